"""The reader: ``RedisLogConsumer``, which gets every record out of Redis again and loses none.

``consumer`` is the loop (admission, re-emission, acknowledgement, stats),
``settings`` its parameters; ``feeds`` chooses where each batch is read (a
feed per shard); ``stream_group`` and ``prefetch`` read a stream through a
consumer group, ``list_and_channel`` a list or a Pub/Sub channel; ``entries``
turns what Redis returns into entries and entries into documents,
``dead_letter`` keeps what cannot be handled, ``dedupe`` skips repeats, and
``retention`` trims what every group has finished with.

May import ``_schema`` and ``_shared``; never ``_writer`` or ``_cli``. It uses
redis-py's synchronous client on the caller's thread.
"""
