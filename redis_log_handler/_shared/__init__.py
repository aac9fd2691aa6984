"""What both sides share: URLs and clients, shard keys, parameter checks, JSON, diagnostics, fork, native threads.

Each module here stands alone: it imports nothing of the package outside
``_shared``.
"""
