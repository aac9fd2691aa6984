"""The cost of one record: RedisHandler against stdlib's own dispatch, and where the time goes.

    python benchmarks/per_record.py [--records 100000] [--reps 5] [--threads 1 20]

Three handlers take the same ``log.info("request %d served in %s ms", i, "12.5")`` calls, alternating,
each repetition in a new order, against a server this script starts:

- **do-nothing**: a handler whose ``emit`` does nothing and whose ``handle`` takes no lock (as
  ``RedisHandler.handle`` takes none): stdlib's own work per call, building the ``LogRecord`` and
  dispatching it, the floor for any ``logging.Handler``;
- **getMessage**: the same, formatting the message;
- **RedisHandler** in stream and list mode, timed until ``flush()`` says every record is in Redis.

Printed: each design's median rate and microseconds per record, the median over the repetitions of
RedisHandler's written rate over the do-nothing handler's in the same repetition (the ratio the
per-record issue sets at 0.6 or more), how long of each run came after the last logging call returned
(``flush()`` waiting for the backlog the writer had left), and the process's CPU time per record, every
thread's (close to the µs per record while the GIL is never idle).

Then, on one thread, the stages of RedisHandler's logging call timed alone over the same records
(``perf_counter_ns`` around each, median of the repetitions), and the writer alone: records logged
while the server is frozen, then the time to drain them with the callers idle. Last, ``timeit`` on one
record: ``emit`` and each step of the call-site way (``_schema/call_sites.py``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from burst import redis_handler
from common import run_threads
from peers import Unlocked

import redis_log_handler
from redis_log_handler import RedisHandler
from redis_log_handler._schema.document import stdlib_document
from redis_log_handler._schema.encoding import DocumentEncoder
from redis_log_handler._shared.resp import frame
from redis_log_handler.testing import EmbeddedRedis

MESSAGE = "request %d served in %s ms"


class DoNothing(Unlocked):
    """stdlib's dispatch and nothing else: no lock in ``handle``, nothing in ``emit``."""

    def emit(self, record: logging.LogRecord) -> None:
        """Nothing."""


class GetMessage(DoNothing):
    """The do-nothing handler that formats the message."""

    def emit(self, record: logging.LogRecord) -> None:
        """Format the message, then drop it."""
        record.getMessage()


Design = Callable[[str], "tuple[logging.Handler, Callable[[], None]]"]


class Run(NamedTuple):
    """One timed run: records/s until every record was in, the part of it after the last logging call, and the
    process's CPU time per record (every thread's: the logging threads', the writer's)."""

    rate: float
    tail_s: float
    cpu_us: float


def _run(design: Design, threads: int, records: int) -> Run:
    """*records* calls from *threads* threads through a fresh handler, timed until ``finish`` returned."""
    handler, finish = design(f"bench:per-record:{uuid.uuid4().hex}")
    log = logging.getLogger(f"bench.per_record.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    per_thread = records // threads
    finish_started = 0.0

    def work(_thread: int) -> None:
        info = log.info
        for number in range(per_thread):
            info(MESSAGE, number, "12.5")

    def timed_finish() -> None:
        nonlocal finish_started
        finish_started = time.perf_counter()
        finish()

    cpu_started = time.process_time()
    elapsed = run_threads(threads, work, timed_finish)
    cpu = time.process_time() - cpu_started
    tail = time.perf_counter() - finish_started  # measured right after run_threads returned
    log.removeHandler(handler)
    handler.close()
    done = per_thread * threads
    return Run(done / elapsed, tail, cpu / done * 1e6)


def ratios(url: str, records: int, reps: int, thread_counts: list[int]) -> list[dict[str, Any]]:
    """Each design's median rate, tail and CPU, and its median ratio to the do-nothing handler, per thread count."""
    designs: dict[str, Design] = {
        "do-nothing": lambda _key: (DoNothing(), lambda: None),
        "getMessage": lambda _key: (GetMessage(), lambda: None),
        "RedisHandler, stream": redis_handler(url, "stream"),
        "RedisHandler, list": redis_handler(url, "list"),
    }
    rows = []
    for threads in thread_counts:
        runs: dict[str, list[Run]] = {name: [] for name in designs}
        names = list(designs)
        for rep in range(reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                runs[name].append(_run(designs[name], threads, records))
        for name in designs:
            relative = [run.rate / floor.rate for run, floor in zip(runs[name], runs["do-nothing"], strict=True)]
            rate = statistics.median(run.rate for run in runs[name])
            rows.append(
                {
                    "threads": threads,
                    "design": name,
                    "records_per_s": rate,
                    "us_per_record": 1e6 / rate,
                    "ratio_to_do_nothing": statistics.median(relative),
                    "tail_ms": statistics.median(run.tail_s for run in runs[name]) * 1e3,
                    "cpu_us_per_record": statistics.median(run.cpu_us for run in runs[name]),
                }
            )
    return rows


def _records(count: int) -> list[logging.LogRecord]:
    """*count* records as the logging call makes them (through a logger, so every field is filled)."""
    made: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            made.append(record)

    log = logging.getLogger(f"bench.per_record.stages.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(Keep())
    for number in range(count):
        log.info(MESSAGE, number, "12.5")
    return made


def _per_record_ns(step: Callable[[Any], Any], inputs: list[Any]) -> tuple[float, list[Any]]:
    """Nanoseconds per item of *step* over *inputs*, with the collector off as ``timeit`` does (the outputs
    are kept for the next stage, and collecting them again and again would be timed too)."""
    outputs = []
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for item in inputs:
            outputs.append(step(item))
        elapsed = time.perf_counter_ns() - started
    finally:
        gc.enable()
    return elapsed / len(inputs), outputs


def stages(url: str, records: int, reps: int) -> dict[str, float]:
    """Microseconds per record of each stage on one thread (median of *reps*), and of the writer alone."""
    encoder = DocumentEncoder({}, 262_144)
    samples: dict[str, list[float]] = {}
    for _ in range(reps):
        made = _records(records)
        step_costs: dict[str, float] = {}
        step_costs["getMessage"], messages = _per_record_ns(logging.LogRecord.getMessage, made)
        pairs = list(zip(made, messages, strict=True))
        step_costs["whole document: build"], documents = _per_record_ns(lambda pair: stdlib_document(*pair), pairs)
        step_costs["whole document: encode"], encoded = _per_record_ns(encoder.encode, documents)
        try:
            from redis_log_handler._schema.call_sites import CallSiteEncoder  # noqa: PLC0415
        except ImportError:  # a tree from before it
            pass
        else:
            call_sites = CallSiteEncoder(encoder, 262_144, "v1")
            step_costs["framed from the call site's parts (what the handler does)"], _ = _per_record_ns(
                lambda pair, sites=call_sites: sites.frame(*pair), pairs
            )
        step_costs["frame"], _ = _per_record_ns(frame, encoded)
        del made, messages, pairs, documents, encoded
        step_costs["logging call, whole (writer running)"] = 1e9 / _run(redis_handler(url, "stream"), 1, records).rate
        step_costs["writer alone: wall time per record"], step_costs["writer alone: CPU per record"] = _writer_alone(
            records
        )
        for name, cost in step_costs.items():
            samples.setdefault(name, []).append(cost / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def call_site_steps(reps: int) -> dict[str, float]:
    """Microseconds of each step of the call-site way (and of the emit around it) on one record, ``timeit``."""
    import timeit  # noqa: PLC0415

    from redis_log_handler._schema import call_sites  # noqa: PLC0415

    record = _records(1)[0]
    handler = RedisHandler(url="redis://127.0.0.1:1/0")
    handler._shipper.intake.put = lambda framed: None  # type: ignore[method-assign]  # the buffer is not timed
    sites = handler._call_sites
    sites.frame(record, record.getMessage())
    namespace = {"record": record, "message": record.getMessage(), "sites": sites, "handler": handler}
    namespace |= vars(call_sites)
    steps = {
        "emit, whole (buffer not included)": "handler.emit(record)",
        "getMessage": "record.getMessage()",
        "CallSiteEncoder.frame, whole": "sites.frame(record, message)",
        "  the record's attributes (3 itemgetters) and its key count (extra fields?)": (
            "(_SITE(record.__dict__), _CHANGING(record.__dict__), _OTHERS(record.__dict__), "
            "len(record.__dict__) != _STANDARD_COUNT)"
        ),
        "  a current OpenTelemetry span? (when opentelemetry-api is installed)": (
            "current_trace is not None and current_trace() is not None"
        ),
        "  the call site's parts (a dict lookup by the 9-tuple)": "sites._parts.get(_SITE(record.__dict__))",
        "  the message as JSON": "dumps(message)",
        "  the time's digits": (
            "(_THREE_DIGITS[int(record.msecs)], _THREE_DIGITS[round((record.created - int(record.created)) "
            "* 1_000_000) % 1000])"
        ),
        "  the sequence number": "b'%d' % record_ids.next()",
    }
    number = 200_000
    return {
        name: min(timeit.repeat(statement, globals=namespace, number=number, repeat=reps)) / number * 1e6
        for name, statement in steps.items()
    }


def _writer_alone(records: int) -> tuple[float, float]:
    """Nanoseconds per record for the writer to drain records buffered while the server was frozen, with the
    callers idle: the wall time (the server's work included), and this process's CPU time (the writer's)."""
    with EmbeddedRedis() as server:
        handler = RedisHandler(url=server.url, key="bench:writer-alone", buffer_size=records + 1000)
        log = logging.getLogger(f"bench.per_record.writer.{uuid.uuid4().hex}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.info("warm up")
        if not handler.flush(30):
            raise RuntimeError("the warm-up record was not written")
        server.pause()
        try:
            for number in range(records):
                log.info(MESSAGE, number, "12.5")
        finally:
            server.resume()
        started, cpu_started = time.perf_counter_ns(), time.process_time_ns()
        if not handler.flush(300):
            raise RuntimeError(f"the writer did not drain: {handler.stats()}")
        elapsed, cpu = time.perf_counter_ns() - started, time.process_time_ns() - cpu_started
        log.removeHandler(handler)
        handler.close()
    return elapsed / records, cpu / records


def main() -> int:
    """Run both parts and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--no-stages", action="store_true", help="the ratios only")
    arguments = parser.parse_args()
    with EmbeddedRedis() as server:
        rows = ratios(server.url, arguments.records, arguments.reps, arguments.threads)
        print(f"\n{redis_log_handler.__file__}: {arguments.records:,} calls, median of {arguments.reps} repetitions\n")
        print(
            "| threads | design | records/s | µs per record | ratio to do-nothing | "
            "after the last call, ms | CPU µs per record |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            print(
                f"| {row['threads']} | {row['design']} | {row['records_per_s']:,.0f} | "
                f"{row['us_per_record']:.2f} | {row['ratio_to_do_nothing']:.2f} | {row['tail_ms']:.0f} | "
                f"{row['cpu_us_per_record']:.2f} |"
            )
        if not arguments.no_stages:
            costs = stages(server.url, arguments.records, arguments.reps)
            print("\nStages on one thread (µs per record, median)\n")
            print("| stage | µs |")
            print("|---|---|")
            for name, cost in costs.items():
                print(f"| {name} | {cost:.2f} |")
            print("\nOne record, timeit (µs, best of the repetitions; steps of the call-site way indented)\n")
            print("| step | µs |")
            print("|---|---|")
            for name, cost in call_site_steps(arguments.reps).items():
                print(f"| {name} | {cost:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
