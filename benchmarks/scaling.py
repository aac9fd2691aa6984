"""Past one server: what one Redis spends per record, and 4 producer processes into one server vs a cluster.

- **Server cost per record**, each mode at ``batch_size`` 100 and 1000: N
  records through a RedisHandler into a server of this run's own; server CPU
  from ``INFO cpu`` (user + system, what one Redis core can give) and the
  commands' own time from ``INFO commandstats``, each divided by N. The
  reference is the cheapest command form with the same guarantees, sent by
  ``redis-benchmark`` (redis-py pipelines if it is not installed) with the same
  document: stream, one pipelined ``XADD`` per record; list, one ``RPUSH`` of a
  whole batch; pubsub, one pipelined ``PUBLISH`` per record (to a channel
  nobody subscribes to, in both). What the server spends idle over the same
  time (its timers) is subtracted. Target: each mode within 1.2x of its reference.
- **The cost of wait_replicas=1**: one thread logs N records and flushes, into
  a master with one replica, with ``wait_replicas`` 0 and 1 alternating;
  records/s end to end and their ratio.
- **Aggregate throughput**: 4 processes each log M records and close, into one
  server (``shards=1``) and into a 3-master cluster (``shards=3``); records/s
  from the first record until every process has closed, and their ratio. On a
  machine with fewer cores than processes + masters they compete for CPU: the
  printout also gives the ceiling each layout would have with a core per master,
  from the measured server cost.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from common import MESSAGE, new_logger

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.topologies import Cluster

_MODES = ("stream", "list", "pubsub")
_REFERENCE = {"stream": "XADD per record", "list": "one RPUSH per batch", "pubsub": "PUBLISH per record"}


def _cpu_seconds(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _command_us(client: redis.Redis) -> float:
    """Microseconds the commands took since the last reset: a script's own time (it includes the commands
    it calls, which commandstats also counts separately), else every command's but INFO's and CONFIG's.
    """
    stats = client.info("commandstats")
    if "cmdstat_eval" in stats:
        return float(stats["cmdstat_eval"]["usec"])
    return sum(float(value["usec"]) for name, value in stats.items() if name not in ("cmdstat_info", "cmdstat_config"))


def _idle_cpu_rate(client: redis.Redis, seconds: float = 1.0) -> float:
    """CPU seconds per second the server spends doing nothing (its timers): subtracted from each run."""
    before, started = _cpu_seconds(client), time.perf_counter()
    time.sleep(seconds)
    return (_cpu_seconds(client) - before) / (time.perf_counter() - started)


def _measure(client: redis.Redis, send: Any, idle_rate: float) -> tuple[float, float]:
    """Server CPU µs (less what it spends idle over the same time) and command µs while *send()* runs."""
    client.config_resetstat()
    cpu_before, started = _cpu_seconds(client), time.perf_counter()
    send()
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(client) - cpu_before - idle_rate * elapsed
    return cpu * 1e6, _command_us(client)


def _handler_cost(
    client: redis.Redis, url: str, mode: str, batch_size: int, records: int, idle_rate: float
) -> tuple[float, float]:
    """Server CPU µs and command µs for *records* records through a RedisHandler."""
    key = f"bench:scaling:{uuid.uuid4().hex}"
    handler = RedisHandler(url=url, key=key, mode=mode, batch_size=batch_size, buffer_size=max(100_000, records))
    logger = new_logger(handler, "scaling")

    def send() -> None:
        for number in range(records):
            logger.info(MESSAGE, number, number % 100)
        if not handler.flush(120):
            raise RuntimeError(f"{mode}: records not written")

    try:
        return _measure(client, send, idle_rate)
    finally:
        handler.close()
        client.delete(key)


def _document(url: str) -> bytes:
    """One document as the handler writes it (the reference sends the same bytes)."""
    key = f"bench:scaling:sample:{uuid.uuid4().hex}"
    handler = RedisHandler(url=url, key=key)
    new_logger(handler, "scaling-sample").info(MESSAGE, 12345, 67)
    handler.flush(10)
    handler.close()
    client = redis.Redis.from_url(url)
    document: bytes = client.xrange(key)[0][1][b"data"]
    client.delete(key)
    client.close()
    return document


def _reference_cost(
    client: redis.Redis,
    server: EmbeddedRedis,
    mode: str,
    batch_size: int,
    records: int,
    document: bytes,
    idle_rate: float,
) -> tuple[float, float, str]:
    """Server CPU µs and command µs for the cheapest command form of *records* records, and the tool used."""
    key = f"bench:scaling:ref:{uuid.uuid4().hex}"
    benchmark = shutil.which("redis-benchmark")
    if mode == "stream":
        command: list[bytes] = [b"XADD", key.encode(), b"*", b"data", document]
        calls, pipeline = records, batch_size
    elif mode == "list":
        command = [b"RPUSH", key.encode(), *[document] * batch_size]
        calls, pipeline = records // batch_size, 1
    else:
        command = [b"PUBLISH", key.encode(), document]
        calls, pipeline = records, batch_size

    def send() -> None:
        if benchmark is not None:
            subprocess.run(
                [benchmark, "-p", str(server.port), "-n", str(calls), "-P", str(pipeline), "-c", "1", "-q", *command],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            return
        for start in range(0, calls, pipeline):
            with client.pipeline(transaction=False) as pipe:
                for _ in range(min(pipeline, calls - start)):
                    pipe.execute_command(*command)
                pipe.execute()

    try:
        cpu, commands = _measure(client, send, idle_rate)
    finally:
        client.delete(key)
    return cpu, commands, "redis-benchmark" if benchmark else "redis-py pipeline"


def server_cost(records: int, reps: int) -> dict[str, Any]:
    """Server µs per record for each mode and batch size, through the handler and by the reference commands."""
    rows = []
    with EmbeddedRedis() as server:
        client = redis.Redis(port=server.port)
        document = _document(server.url)
        idle_rate = _idle_cpu_rate(client)
        for mode in _MODES:
            for batch_size in (100, 1000):
                handler_cpu, reference_cpu, handler_commands, reference_commands = [], [], [], []
                tool = ""
                for _ in range(reps):
                    cpu, commands = _handler_cost(client, server.url, mode, batch_size, records, idle_rate)
                    handler_cpu.append(cpu / records)
                    handler_commands.append(commands / records)
                    cpu, commands, tool = _reference_cost(
                        client, server, mode, batch_size, records, document, idle_rate
                    )
                    reference_cpu.append(cpu / records)
                    reference_commands.append(commands / records)
                rows.append(
                    {
                        "mode": mode,
                        "batch_size": batch_size,
                        "handler_cpu_us": statistics.median(handler_cpu),
                        "reference_cpu_us": statistics.median(reference_cpu),
                        "handler_command_us": statistics.median(handler_commands),
                        "reference_command_us": statistics.median(reference_commands),
                        "ratio": statistics.median(handler_cpu) / statistics.median(reference_cpu),
                        "reference": f"{_REFERENCE[mode]} ({tool})",
                    }
                )
        client.close()
    return {"records": records, "reps": reps, "document_bytes": len(document), "rows": rows}


def _wait_for_replica(master: redis.Redis) -> None:
    deadline = time.monotonic() + 30
    while master.info("replication").get("slave0", {}).get("state") != "online":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not come online within 30 s")
        time.sleep(0.05)


def replica_wait(records: int, reps: int) -> dict[str, Any]:
    """End-to-end records/s with wait_replicas 0 and 1, into a master with one replica."""
    rates: dict[int, list[float]] = {0: [], 1: []}
    with (
        EmbeddedRedis("--repl-diskless-sync-delay", "0") as master,
        EmbeddedRedis("--replicaof", "127.0.0.1", str(master.port)),
    ):
        _wait_for_replica(redis.Redis(port=master.port))
        for _ in range(reps):
            for wait in (0, 1):
                key = f"bench:replicas:{uuid.uuid4().hex}"
                handler = RedisHandler(url=master.url, key=key, wait_replicas=wait, buffer_size=max(100_000, records))
                logger = new_logger(handler, "replicas")
                started = time.perf_counter()
                for number in range(records):
                    logger.info(MESSAGE, number, number % 100)
                if not handler.flush(120):
                    raise RuntimeError(f"wait_replicas={wait}: records not written")
                rates[wait].append(records / (time.perf_counter() - started))
                handler.close()
                redis.Redis(port=master.port).delete(key)
    without, with_wait = statistics.median(rates[0]), statistics.median(rates[1])
    return {"records": records, "reps": reps, "without": without, "with": with_wait, "ratio": with_wait / without}


_PRODUCER = """
import logging, sys
from redis_log_handler import RedisHandler
url, key, shards, records = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
logger = logging.getLogger("producer")
logger.propagate = False
logger.setLevel(logging.INFO)
handler = RedisHandler(url=url, key=key, shards=shards, buffer_size=max(100_000, records))
logger.addHandler(handler)
for number in range(records):
    logger.info("request %s served in %d ms", number, number % 100)
handler.close()
sys.exit(0 if handler.stats()["written"] == records else 1)
"""


def _producers(url: str, key: str, shards: int, processes: int, records: int) -> float:
    """Records/s of *processes* producer processes, from their start until each has closed its handler."""
    started = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, "-c", _PRODUCER, url, key, str(shards), str(records)])
        for _ in range(processes)
    ]
    if any(child.wait(timeout=600) for child in children):
        raise RuntimeError("a producer did not write every record")
    return processes * records / (time.perf_counter() - started)


def aggregate(records: int, reps: int, processes: int = 4) -> dict[str, Any]:
    """4 producer processes into one server and into a 3-master cluster with shards=3, alternating."""
    single_rates, cluster_rates = [], []
    with EmbeddedRedis() as server:
        cluster = Cluster(masters=3).start()
        try:
            for _ in range(reps):
                key = f"bench:aggregate:{uuid.uuid4().hex}"
                single_rates.append(_producers(server.url, key, 1, processes, records))
                cluster_rates.append(_producers(cluster.url, key, 3, processes, records))
        finally:
            cluster.stop()
    single, clustered = statistics.median(single_rates), statistics.median(cluster_rates)
    return {
        "processes": processes,
        "records_per_process": records,
        "reps": reps,
        "cores": os.cpu_count(),
        "single_records_per_s": single,
        "cluster_records_per_s": clustered,
        "ratio": clustered / single,
    }


def print_scaling(cost: dict[str, Any], waits: dict[str, Any], spread: dict[str, Any]) -> None:
    """The server-cost, wait_replicas and aggregate tables."""
    print(
        f"\n## Server cost per record ({cost['records']:,} records of {cost['document_bytes']} bytes, "
        f"median of {cost['reps']})\n"
    )
    print("| mode | batch_size | handler: server CPU µs | reference: server CPU µs | ratio | command µs "
          "(handler / reference) | reference |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for row in cost["rows"]:
        print(
            f"| {row['mode']} | {row['batch_size']} | {row['handler_cpu_us']:.2f} | {row['reference_cpu_us']:.2f} | "
            f"{row['ratio']:.2f}x | {row['handler_command_us']:.2f} / {row['reference_command_us']:.2f} | "
            f"{row['reference']} |"
        )
    print(f"\n## wait_replicas (1 thread, {waits['records']:,} records, end to end, median of {waits['reps']})\n")
    print("| wait_replicas | records/s |")
    print("|---|---|")
    print(f"| 0 | {waits['without']:,.0f} |")
    print(f"| 1 | {waits['with']:,.0f} ({waits['ratio']:.2f}x) |")
    stream = next(row for row in cost["rows"] if row["mode"] == "stream" and row["batch_size"] == 1000)
    ceiling = 1e6 / stream["handler_cpu_us"]
    print(
        f"\n## {spread['processes']} producer processes, {spread['records_per_process']:,} records each "
        f"(median of {spread['reps']}, {spread['cores']} cores)\n"
    )
    print("| into | records/s |")
    print("|---|---|")
    print(f"| one server (shards=1) | {spread['single_records_per_s']:,.0f} |")
    print(f"| 3-master cluster (shards=3) | {spread['cluster_records_per_s']:,.0f} |")
    print(f"\ncluster / one server = {spread['ratio']:.2f}x on this machine")
    print(
        f"one server's ceiling in stream mode, computed (not measured) from the server CPU per record above: "
        f"{ceiling:,.0f} records/s (1 core / {stream['handler_cpu_us']:.2f} µs)"
    )
