"""The disk spill: one handler's queue of segment files (``spill``) and one segment file's format (``segments``).

Part of the writer; imports nothing of it beyond the ledger's counts and the
RESP framing, and no asyncio: application threads store into it directly.
"""
