"""What both sides share: URLs and clients, shard keys, checks, JSON, RESP framing, retries, diagnostics, fork, threads.

The version too.

Each module here stands alone: it imports nothing of the package outside
``_shared``.
"""
