"""``python -m redis_log_handler``: the ``redis-log-handler`` command."""

from __future__ import annotations

import sys

from ._cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
