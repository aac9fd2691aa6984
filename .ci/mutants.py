"""Break one promise at a time and check that the suite notices: each mutant must make a named test fail.

    .venv/bin/python .ci/mutants.py            # every mutant
    .venv/bin/python .ci/mutants.py a c        # some of them

For each mutant the package is copied to a scratch directory, one line of it is replaced, and the tests
named for that mutant run against the copy (``PYTHONPATH`` puts it first). A mutant that no test kills is a
promise nothing guards: the script says so and exits with status 1. The unmodified tree must pass the same
tests, which the script checks first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
        ("tests/test_intake.py::TestSteppingAside", "tests/test_load.py::test_unpaced_producers_lose_nothing"),
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
        ("tests/test_outage.py", "tests/test_faults.py"),
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
        "_shared/json.py",
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
        ("tests/test_outage.py::TestDeadline",),
    ),
    Mutant(
        "m",
        "a close that joins one under way waits for it, so an interrupted exit still writes or names every record",
        "_writer/shipper.py",
        "        with self._close_lock:\n            if not self.closed:",
        "        with self._close_lock:\n            if self.closed:\n                return _noop\n"
        "            if not self.closed:",
        ("tests/test_outage.py::TestExit",),
    ),
]


def failing_tests(package_parent: Path, tests: tuple[str, ...]) -> list[str]:
    """The tests among *tests* that fail with the package found in *package_parent* first (stops at the first)."""
    environment = {**os.environ, "PYTHONPATH": f"{package_parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # -P and --import-mode=append: Python and pytest would otherwise put the project's root, and its package, first
    command = [
        sys.executable,
        "-P",
        "-m",
        "pytest",
        "-q",
        "-x",
        "-rf",
        "-p",
        "no:cacheprovider",
        "--import-mode=append",
    ]
    result = subprocess.run(  # noqa: S603 - our own interpreter and test ids
        [*command, *tests], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    failed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    return failed or ([] if result.returncode == 0 else [f"pytest exited with {result.returncode}"])


def main(chosen: list[str]) -> int:
    mutants = [mutant for mutant in MUTANTS if not chosen or mutant.name in chosen]
    survivors = []
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "redis_log_handler"
        for mutant in mutants:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(ROOT / "redis_log_handler", copy, ignore=shutil.ignore_patterns("__pycache__"))
            if failing_tests(Path(scratch), mutant.tests):
                print(f"({mutant.name}) the unmodified tree fails {' '.join(mutant.tests)}: fix that first")
                return 2
            source = copy / mutant.module
            text = source.read_text()
            if text.count(mutant.old) != 1:
                print(f"({mutant.name}) the line to replace is not in {mutant.module} once: update this script")
                return 2
            source.write_text(text.replace(mutant.old, mutant.new))
            failed = failing_tests(Path(scratch), mutant.tests)
            print(f"({mutant.name}) {mutant.promise}: " + (f"killed by {failed[0]}" if failed else "SURVIVED"))
            if not failed:
                survivors.append(mutant.name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
