"""Integrations with servers and job queues whose processes end in ways ``logging`` does not see.

Each lives in a module of its own that imports its framework (an optional
extra): ``redis_log_handler.integrations.rq`` needs ``rq``.
"""

__all__: list[str] = []
