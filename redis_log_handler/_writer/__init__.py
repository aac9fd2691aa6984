"""The writer: ``RedisHandler`` and its adapters, and everything between a logging call and Redis.

On the application's threads: the handler (``handler``, ``loguru_sink``,
``structlog_processor``) admits a record, builds and encodes its document and
hands the frame to the intake (``intake``, ``backpressure``, ``reentry``).
On the runtime loop (``runtime``): each handler's drain task (``drain``) takes
round trips (``trip``) from disk (``spill/``) or memory and delivers them
(``delivery``, ``transport/``, ``replicas``), settles flushes (``flush``) and
keeps the counts (``ledger``, ``counters``). Around them: the wiring and
lifecycle of one handler (``shipper``, ``settings``), the heartbeat, exit and
``flush_all``, the live handlers for the metrics, and the rules of servers that
end a worker without its exit hooks (``uwsgi``, ``sigterm``).

May import ``_schema`` and ``_shared``; never ``_reader`` or ``_cli``.
"""
