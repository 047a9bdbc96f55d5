"""pgraft: Raft consensus for PostgreSQL clusters."""

__version__ = "0.1.0"
