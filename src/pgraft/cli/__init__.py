"""The ``pgraft`` command line."""
