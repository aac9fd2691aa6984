"""The writer's transport: its own connection to Redis and the bytes one round trip sends and reads.

``protocol`` is the seam the drain writes through (a :class:`Transport`, and
what a round trip brings back); ``batch_writer`` is the one to Redis: it owns
the client, the connection, a round trip's replies (which delivery sorts with
``_shared.retry``'s table) and the heartbeat's writes; ``batch_commands`` builds
the command each batch becomes per mode, from ``_shared.resp``'s framing;
``info`` reads the server's ``INFO``; ``endpoint`` picks the server (the pool's,
or the master of the key's slot); ``writer_socket`` tunes the socket under the
connection. ``memory`` is the in-memory transport of
``redis_log_handler.testing``. The only part of the writer that talks to Redis.
"""
