"""Which threads are inside the handler's own machinery right now: their records must not come back in.

One thread-local flag serves two cases, so the logging call checks it once:

- the runtime thread has it set for good: whatever redis-py, asyncio or this
  library logs there would feed the handler its own output;
- an application thread has it set while a handler starts the runtime on it.
  Starting the runtime creates an event loop, and asyncio logs while it does
  ("Using selector: ..."): a record logged then would come straight back into
  the handler and wait forever for the runtime it is itself starting.

Such records are dropped and counted as ``dropped_internal``. The flag is not
set around the rest of a logging call: nothing else the handler does there
logs, and a record the application's own code logs meanwhile (a ``__str__``
called to format the message, say) is written like any other, as stdlib's
handlers do. Setting and clearing it on every call would cost the logging call
(docs/benchmarks.md, "Figures behind the code").
"""

from __future__ import annotations

import threading

__all__ = ["inside"]


class _Inside(threading.local):
    active = False


inside = _Inside()
