"""The writer's transport: its own connection to Redis and the bytes one round trip sends and reads.

``batch_writer`` owns the client, the connection and a round trip's replies
(classified as a table); ``batch_commands`` builds the command each batch
becomes per mode, from ``resp``'s framing; ``endpoint`` picks the server (the
pool's, or the master of the key's slot); ``socket`` tunes the socket under
the connection. The only part of the writer that talks to redis-py.
"""
