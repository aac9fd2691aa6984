"""Break one promise at a time and check that the suite notices: each mutant must make a named test fail.

    .venv/bin/python .ci/mutants.py                  # every mutant
    .venv/bin/python .ci/mutants.py a c              # some of them
    .venv/bin/python .ci/mutants.py --no-baseline    # skip the check that the unmodified tree passes (CI: the
                                                     # whole suite just passed on it)

The project (package, tests, docs, configuration; not ``.git`` or the virtual environments) is copied to a
scratch directory, and the tests run there, with that copy first on ``PYTHONPATH``: the pytest process and
every process the tests start (servers, workers, ``python -c`` children, whatever their working directory)
import the copy's package. For each mutant one line of the copy is replaced, the tests named for it run, and
the line is restored. The working tree is never touched, so other work (CI's other phases) can go on beside.
A mutant is killed only when a named test fails on an assertion (``.ci/killed_by_assertion.py``): a crash, a
fixture or collection error, or a timeout does not count. A mutant that no test kills is a promise nothing
guards: the script says so and exits with status 1. Unless ``--no-baseline``, the unmodified copy must first
pass the same tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".tox", ".packaging", ".ci-logs", "dist", "build", "site", "__pycache__"
)


@dataclass(frozen=True)
class Mutant:
    """A promise broken by replacing *old* with *new* in *module*; *tests* must notice."""

    name: str
    promise: str
    module: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "a",
        "back-pressure: a logging thread past the high-water mark lets a writer that could run run",
        "_writer/backpressure.py",
        "    with _turn:\n        if still_needed():\n            _turn.wait(timeout)",
        "    return",
        (
            "tests/test_load.py::test_a_burst_the_writer_could_not_follow_without_back_pressure_loses_nothing",
            "tests/test_intake.py::TestSteppingAside",
        ),
    ),
    Mutant(
        "b",
        "spill: a full memory buffer moves records to disk instead of dropping them",
        "_writer/intake.py",
        "if len(self._buffer) < self.capacity or self._move_to_disk(_MOVE_CHUNK):",
        "if len(self._buffer) < self.capacity:",
        ("tests/test_load.py::test_redis_frozen_mid_run", "tests/test_spill.py"),
    ),
    Mutant(
        "c",
        "a batch counts as written only once Redis replied",
        "_writer/delivery.py",
        "        except Exception as exc:\n            unknown = isinstance(exc, OutcomeUnknown)",
        "        except Exception as exc:\n            self._settle(trip, [None] * len(trip.indexes_to_send()), 0)\n"
        "            unknown = isinstance(exc, OutcomeUnknown)",
        ("tests/test_delivery.py", "tests/test_outage.py", "tests/test_faults.py"),
    ),
    Mutant(
        "d",
        "the consumer acknowledges an entry only once it was handled",
        "_reader/consumer.py",
        "                    to_ack += batch.to_ack",
        "                    to_ack += [entry[0] for entry in batch.entries if entry[0] is not None]",
        ("tests/test_reader.py", "tests/test_consume.py"),
    ),
    Mutant(
        "e",
        "an integer outside 64 bits in an extra field does not cost the record",
        "_shared/json_codec.py",
        "return value if _INT_MIN <= value <= _INT_MAX else str(value)",
        "return value",
        ("tests/test_extra_values.py",),
    ),
    Mutant(
        "f",
        "the logging call never waits on Redis",
        "_writer/handler.py",
        "            shipper.intake.put(framed)\n",
        "            shipper.intake.put(framed)\n            self.flush(1.5)\n",
        (
            "tests/test_outage.py::TestRestart::test_emit_does_not_wait_while_redis_is_frozen",
            "tests/test_faults.py::TestStalls::test_client_pause_write",
        ),
    ),
    Mutant(
        "g",
        "retention removes no entry another group has read and not acknowledged",
        "_reader/retention.py",
        "  if group['pending'] > 0 then",
        "  if false then",
        ("tests/test_retention.py::TestTrimming",),
    ),
    Mutant(
        "h",
        "a record written from its call site's parts is the document the whole encoder writes",
        "_schema/call_sites.py",
        'record_ids.producer_bytes, b"-", number,',
        'record_ids.producer_bytes, b"_", number,',
        ("tests/test_call_sites.py",),
    ),
    Mutant(
        "i",
        "a record with an extra field in place of a deleted standard attribute keeps its extra field",
        "_schema/call_sites.py",
        "            _OTHERS(attributes)  #",
        "            pass  #",
        ("tests/test_call_sites.py::TestTheWholeWay",),
    ),
    Mutant(
        "j",
        "back-pressure starts past one round trip's records, not only past half the buffer",
        "_writer/intake.py",
        "max(1, min(capacity // 2, trip_limit))",
        "max(1, capacity // 2)",
        ("tests/test_intake.py::TestSteppingAside",),
    ),
    Mutant(
        "k",
        "where uvicorn or hypercorn end a worker by SIGTERM's default action, every handler is closed first",
        "_writer/sigterm.py",
        "    if _prepared_pid == os.getpid():\n        return",
        "    return",
        ("tests/test_sigterm.py", "tests/test_server_stops.py"),
    ),
    Mutant(
        "l",
        "while a flush or close waits, a retry is never more than HURRIED_RETRY away",
        "_writer/drain.py",
        "            delay = min(delay, HURRIED_RETRY)",
        "            pass",
        ("tests/test_delivery.py::TestDeadlines", "tests/test_outage.py::TestDeadline"),
    ),
    Mutant(
        "m",
        "a close that joins one under way waits for it, so an interrupted exit still writes or names every record",
        "_writer/shipper.py",
        "        with self._close_lock:\n            if not self.closed:",
        "        with self._close_lock:\n            if self.closed:\n                return _noop\n"
        "            if not self.closed:",
        ("tests/test_delivery.py::TestDeadlines", "tests/test_outage.py::TestExit"),
    ),
    Mutant(
        "n",
        "schema='ecs' writes no field ecs-logging does not, but those the docs list as the handler's own",
        "_schema/ecs.py",
        '"event": {"id": get("id")},',
        '"event": {"id": get("id"), "dataset": get("logger")},',
        ("tests/test_ecs_oracle.py",),
    ),
    Mutant(
        "o",
        "an extra value nested deeper than 16 levels is written as its text, not cut earlier",
        "_shared/json_codec.py",
        "_MAX_DEPTH = 16",
        "_MAX_DEPTH = 12",
        ("tests/test_extra_values.py",),
    ),
    Mutant(
        "p",
        "retention keeps the entries a dead consumer of the consumer's own group has pending",
        "_reader/retention.py",
        "  if group['pending'] > 0 then",
        "  if group['pending'] > 0 and group['name'] ~= group_name then",
        (
            "tests/test_retention.py::TestTrimming::"
            "test_a_dead_consumer_of_the_same_group_keeps_its_pending_entries_until_they_are_claimed",
            "tests/test_reader.py::test_a_killed_consumer_loses_nothing",
            "tests/test_retention.py::TestTrimming",
        ),
    ),
    Mutant(
        "q",
        "retention keeps the entries younger than retain_seconds",
        "_reader/retention.py",
        "if retain_ms > 0 then",
        "if false then",
        ("tests/test_retention.py::TestTrimming",),
    ),
    Mutant(
        "r",
        "a process that stops with records it did not write names them on stderr",
        "_writer/shipper.py",
        "        if dropped + unsettled <= self._losses_named:",
        "        if True:",
        (
            "tests/test_delivery.py::TestDeadlines",
            "tests/test_servers.py::TestGunicorn::test_records_redis_never_got_are_named_at_the_stop",
        ),
    ),
    Mutant(
        "s",
        'overflow="block" refuses a record only after the caller waited its whole block_timeout',
        "_writer/intake.py",
        "deadline = time.monotonic() + self._block_timeout",
        "deadline = time.monotonic() + self._block_timeout * 0.95",
        ("tests/test_handler.py::TestOverflow::test_block_waits_at_most_block_timeout",),
    ),
]


def run_named_tests(copy: Path, tests: tuple[str, ...]) -> tuple[list[str], int]:
    """Run *tests* in *copy*; the tests that failed on an assertion (the first), and pytest's exit status."""
    for cache in (copy / "redis_log_handler").rglob("__pycache__"):  # never the bytecode of the other version
        shutil.rmtree(cache, ignore_errors=True)
    with tempfile.NamedTemporaryFile("r", suffix=".kills", encoding="utf-8") as kills:
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(copy), str(copy / ".ci"), os.environ.get("PYTHONPATH")])),
            "PYTHONDONTWRITEBYTECODE": "1",
            "MUTANT_KILLS": kills.name,
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "killed_by_assertion"]
        result = subprocess.run(  # noqa: S603 - our own interpreter and test ids
            [*command, *tests], cwd=copy, env=environment, capture_output=True, text=True, check=False
        )
        return kills.read().split(), result.returncode


def _stop_on_sigterm(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)  # through the finally that removes the scratch copy


def _source(copy: Path, mutant: Mutant) -> Path:
    return copy / "redis_log_handler" / mutant.module


def main(arguments: list[str]) -> int:
    baseline = "--no-baseline" not in arguments
    chosen = [argument for argument in arguments if not argument.startswith("--")]
    mutants = [mutant for mutant in MUTANTS if not chosen or mutant.name in chosen]
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    survivors = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        copy = Path(scratch) / ROOT.name
        shutil.copytree(ROOT, copy, ignore=_NOT_COPIED)
        stale = [mutant for mutant in mutants if _source(copy, mutant).read_text().count(mutant.old) != 1]
        for mutant in stale:  # before any test runs: a stale line is found in seconds, not after the others
            print(f"({mutant.name}) the line to replace is not in {mutant.module} once: update this script")
        if stale:
            return 2
        for mutant in mutants:
            if baseline:
                kills, status = run_named_tests(copy, mutant.tests)
                if kills or status != 0:
                    print(f"({mutant.name}) the unmodified tree fails {' '.join(mutant.tests)}: fix that first")
                    return 2
            source = _source(copy, mutant)
            original = source.read_text()
            source.write_text(original.replace(mutant.old, mutant.new))
            try:
                kills, status = run_named_tests(copy, mutant.tests)
            finally:
                source.write_text(original)
            if kills:
                print(f"({mutant.name}) {mutant.promise}: killed by {kills[0]}", flush=True)
            else:
                outcome = "no named test failed" if status == 0 else f"pytest exited with {status}, no assertion failed"
                print(f"({mutant.name}) {mutant.promise}: SURVIVED ({outcome})", flush=True)
                survivors.append(mutant.name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
