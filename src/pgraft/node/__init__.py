"""The pgraft node process: the asyncio runtime that drives the Raft core, persists to
durable storage, talks to peers and serves the control socket. Start it with
``python -m pgraft.node --config node.json``; see ``runtime`` for the driver loop."""
