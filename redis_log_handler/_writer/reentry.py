"""Which threads are inside the handler's own machinery right now: their records must not come back in.

One thread-local flag serves two cases, so the logging call checks it once:

- the runtime thread has it set for good: whatever redis-py, asyncio or this
  library logs there would feed the handler its own output;
- an application thread has it set while a handler is busy on it. Starting
  the runtime creates an event loop, and asyncio logs while it does ("Using
  selector: ..."): a record logged then would come straight back into the
  handler and wait forever for the runtime it is itself starting.

Such records are dropped and counted as ``dropped_internal``.
"""

from __future__ import annotations

import threading

__all__ = ["inside"]


class _Inside(threading.local):
    active = False


inside = _Inside()
