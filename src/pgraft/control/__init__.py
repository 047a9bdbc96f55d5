"""The control API: JSON lines over a Unix socket (docs/contracts.md §3)."""
