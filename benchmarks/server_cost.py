"""The server's side of one record: CPU the server spends per record on what the writer sends, per mode.

    python benchmarks/server_cost.py [--trips 50] [--batches 4]

The writer's own round trips (``BatchCommands``, the very bytes it sends: ``--batches`` batches of 1,000
typical documents per round trip) are written on a plain socket to a server this script starts, each
round trip's replies read before the next goes, and the server's CPU time (``INFO cpu``, user and
system) divided by the records. For comparison, two ways the writer does not use in stream mode:
the same ``XADD`` commands inside ``MULTI``/``EXEC``, and pipelined bare.

This is the cost that sets how fast a backlog drains once the application stops logging (the tail
``per_record.py`` prints), and, on a machine with fewer cores than busy processes, the CPU the server
takes from the application.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
from collections.abc import Callable

import redis

from redis_log_handler._schema.document import stdlib_document
from redis_log_handler._schema.encoding import DocumentEncoder
from redis_log_handler._shared.resp import command_prefix, frame, join_calls
from redis_log_handler._writer.settings import WriterSettings
from redis_log_handler._writer.transport.batch_commands import BatchCommands
from redis_log_handler.testing import EmbeddedRedis

BATCH = 1000


def _documents(count: int) -> list[bytes]:
    """*count* framed documents of the size the benchmarks log."""
    encoder = DocumentEncoder({}, 262_144)
    framed = []
    for number in range(count):
        record = logging.LogRecord(
            "bench.server", logging.INFO, "/srv/app/orders.py", 42, "request %d served in %s ms", (number, "12.5"), None
        )
        framed.append(frame(encoder.encode(stdlib_document(record, record.getMessage()))))
    return framed


def _replies_complete(expected_lines: int) -> Callable[[bytes], bool]:
    return lambda received: received.count(b"\r\n") >= expected_lines


def _server_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _measure(server: EmbeddedRedis, payload: bytes, done: Callable[[bytes], bool], records: int, trips: int) -> float:
    """Server CPU µs per record over *trips* round trips of *payload*, each awaited."""
    client = redis.Redis.from_url(server.url)
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        client.delete("bench:server-cost")
        started = _server_cpu(client)
        for _ in range(trips):
            connection.sendall(payload)
            received = b""
            while not done(received):
                chunk = connection.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("the server closed the connection")
                received += chunk
            if b"\r\n-" in received or received.startswith(b"-"):
                raise RuntimeError(f"the server refused: {received[:200]!r}")
        used = _server_cpu(client) - started
    client.delete("bench:server-cost")
    client.close()
    return used / (records * trips) * 1e6


def main() -> int:
    """Measure each way three times and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=int, default=50)
    parser.add_argument("--batches", type=int, default=4, help="batches of 1,000 records per round trip")
    arguments = parser.parse_args()
    records = BATCH * arguments.batches
    documents = _documents(records)
    batches = [documents[start : start + BATCH] for start in range(0, records, BATCH)]
    key = "bench:server-cost"

    def writer(mode: str) -> bytes:
        settings = WriterSettings.build(url="redis://127.0.0.1:1/0", key=key, mode=mode)
        return BatchCommands(settings, key).command(batches, idempotent=False)

    xadd = command_prefix([b"XADD", key.encode(), b"*", b"data"])
    multi, exec_ = join_calls(command_prefix([b"MULTI"]), [()]), join_calls(command_prefix([b"EXEC"]), [()])
    each = [[document] for document in documents]
    ways: dict[str, tuple[bytes, Callable[[bytes], bool]]] = {
        "stream (the writer: a script running XADD per record)": (
            writer("stream"),
            _replies_complete(arguments.batches),
        ),
        "list (the writer: one RPUSH per batch)": (writer("list"), _replies_complete(arguments.batches)),
        "stream, XADD per record inside MULTI/EXEC (not used)": (
            b"".join(
                multi + join_calls(xadd, each[start : start + BATCH]) + exec_ for start in range(0, records, BATCH)
            ),
            _replies_complete(arguments.batches * (2 + 2 * BATCH) + records),  # +OK, QUEUED, *n, each id's 2 lines
        ),
        "stream, XADD per record pipelined bare (not used)": (
            join_calls(xadd, each),
            _replies_complete(2 * records),
        ),
    }
    with EmbeddedRedis() as server:
        results = {
            name: statistics.median(_measure(server, payload, done, records, arguments.trips) for _ in range(3))
            for name, (payload, done) in ways.items()
        }
    document_bytes = statistics.mean(len(document) for document in documents)
    print(f"\nServer CPU per record ({records:,} records of {document_bytes:.0f} bytes per round trip, median of 3)\n")
    print("| what the server is sent | µs per record |")
    print("|---|---|")
    for name, cost in results.items():
        print(f"| {name} | {cost:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
