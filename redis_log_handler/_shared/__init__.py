"""What both sides share: URLs, clients, shard keys, checks, JSON, RESP, retries, diagnostics, fork, threads, version.

Each module here stands alone: it imports nothing of the package outside
``_shared``.
"""
