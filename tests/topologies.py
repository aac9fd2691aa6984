"""Real Redis Clusters and Sentinel setups on loopback ports, built with plain commands (no redis-cli needed).

A cluster node also listens on its port + 10000 (the cluster bus), so cluster
ports are picked below 55535 with both free. The cluster is assembled the way
``redis-cli --cluster create`` does it: ADDSLOTSRANGE, MEET, REPLICATE; a slot
moves the way ``redis-cli --cluster reshard`` moves it: IMPORTING/MIGRATING,
MIGRATE of its keys, then SETSLOT NODE.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import redis

from redis_log_handler.testing import EmbeddedRedis, find_server_binary

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
# A replica attached to a new master syncs at once (the default waits 5 s for more replicas to join).
_FAST_REPLICATION = ("--repl-diskless-sync-delay", "0")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll *predicate* until truthy; raise naming *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (redis.RedisError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s")
        time.sleep(0.05)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A port below 55535 whose cluster-bus port (+10000) is free too."""
    while True:
        port = random.randrange(20000, 55535)
        if _bindable(port) and _bindable(port + 10000):
            return port


def node_client(node: EmbeddedRedis) -> redis.Redis:
    """A plain client of one node (decoded replies)."""
    return redis.Redis(port=node.port, decode_responses=True, socket_timeout=5)


class _Topology:
    """Servers started together: a start that fails stops whatever it had started."""

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()  # leave no server running behind a failed start
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Cluster(_Topology):
    """*masters* masters splitting the slots evenly, each with *replicas* replicas."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.masters = [self._node() for _ in range(masters)]
        self.replicas = [[self._node() for _ in range(replicas)] for _ in range(masters)]

    @staticmethod
    def _node() -> EmbeddedRedis:
        return EmbeddedRedis(
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            *_FAST_REPLICATION,
            port=cluster_port(),
        )

    @property
    def nodes(self) -> list[EmbeddedRedis]:
        return [*self.masters, *(replica for group in self.replicas for replica in group)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.masters)

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        first = node_client(self.masters[0])
        for index, master in enumerate(self.masters):
            start, end = index * SLOTS // len(self.masters), (index + 1) * SLOTS // len(self.masters) - 1
            node_client(master).execute_command("CLUSTER ADDSLOTSRANGE", start, end)
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        wait_for(lambda: all(self._knows_all(node) for node in self.nodes), 20, "every node meeting every other")
        for master, group in zip(self.masters, self.replicas, strict=True):
            master_id = self.node_id(master)
            for replica in group:
                node_client(replica).execute_command("CLUSTER REPLICATE", master_id)
        self.wait_ok()

    def _knows_all(self, node: EmbeddedRedis) -> bool:
        known = node_client(node).execute_command("CLUSTER NODES")  # redis-py parses it: {"host:port": {...}}
        return len(known) == len(self.nodes) and all(
            "handshake" not in peer["flags"] and peer["connected"] for peer in known.values()
        )

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node reports cluster_state:ok and every master's replicas are in sync."""

        def ok() -> bool:
            for node in self.nodes:
                if node.process is None or node.process.poll() is not None:
                    continue
                if node_client(node).cluster("info")["cluster_state"] != "ok":
                    return False
            return True

        wait_for(ok, timeout, "cluster_state:ok on every node")

    @staticmethod
    def node_id(node: EmbeddedRedis) -> str:
        return str(node_client(node).execute_command("CLUSTER MYID"))

    def owner(self, slot: int) -> EmbeddedRedis:
        """The live node serving *slot* as master, as the cluster sees it now."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            for start, end, master, *_ in node_client(node).execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return next(candidate for candidate in self.nodes if candidate.port == int(master[1]))
        raise LookupError(slot)

    def migrate(self, slot: int, target: EmbeddedRedis) -> None:
        """Move *slot* with its keys to *target*, as ``redis-cli --cluster reshard`` does."""
        source = self.owner(slot)
        source_client, target_client = node_client(source), node_client(target)
        source_id, target_id = self.node_id(source), self.node_id(target)
        target_client.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        source_client.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := source_client.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            source_client.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for master in self.masters:
            if master.process is not None and master.process.poll() is None:
                node_client(master).execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Sentinels(_Topology):
    """One master with *replicas* replicas, watched by *sentinels* sentinels as the service ``logs-master``."""

    SERVICE = "logs-master"

    def __init__(self, replicas: int = 2, sentinels: int = 3) -> None:
        self.master = EmbeddedRedis(*_FAST_REPLICATION)
        self.replicas = [
            EmbeddedRedis("--replicaof", "127.0.0.1", str(self.master.port), *_FAST_REPLICATION)
            for _ in range(replicas)
        ]
        self.sentinel_ports = [cluster_port() for _ in range(sentinels)]
        self._processes: list[subprocess.Popen[bytes]] = []
        self._directory = self.master.directory

    @property
    def servers(self) -> list[EmbeddedRedis]:
        return [self.master, *self.replicas]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def _start(self) -> None:
        for server in self.servers:
            server.start()
        try:
            wait_for(
                lambda: node_client(self.master).info("replication")["connected_slaves"] == len(self.replicas),
                60,
                "replicas attached",
            )
        except TimeoutError as exc:  # say why: the servers' own account
            raise TimeoutError(f"{exc}\n{self._logs()}") from None
        for port in self.sentinel_ports:
            config = Path(self._directory) / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self._directory}\n"
                f"logfile {self._directory}/sentinel-{port}.log\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 5000\n"
                f"sentinel parallel-syncs {self.SERVICE} 2\n"
            )
            command = [find_server_binary(), str(config), "--sentinel"]
            self._processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.sentinel_ports:
            wait_for(lambda port=port: self._sentinel(port).ping(), 10, f"sentinel {port}")
        try:
            # Sentinels find each other through hello messages every 2 s, replicas through INFO every 10 s.
            wait_for(lambda: all(self._sees_everyone(port) for port in self.sentinel_ports), 40, "sentinels settled")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self._views()}\n{self._logs()}") from None

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def _master_state(self, port: int) -> dict[str, Any]:
        """``SENTINEL MASTER`` as one sentinel answers it (a flat list in RESP2, a map in RESP3)."""
        state = self._sentinel(port).execute_command("SENTINEL MASTER", self.SERVICE)
        return dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else dict(state)

    def _sees_everyone(self, port: int) -> bool:
        fields = self._master_state(port)
        return (
            int(fields["num-slaves"]) == len(self.replicas)
            and int(fields["num-other-sentinels"]) == len(self.sentinel_ports) - 1
        )

    def _views(self) -> str:
        """What each sentinel knows of the service, or why it cannot say."""
        views = []
        for port in self.sentinel_ports:
            try:
                fields = self._master_state(port)
                view = {name: fields.get(name) for name in ("flags", "num-slaves", "num-other-sentinels")}
            except redis.RedisError as error:
                view = {"error": repr(error)}
            views.append(f"sentinel {port}: {view}")
        return "\n".join(views)

    def _logs(self) -> str:
        """The tail of every server's and sentinel's log."""
        paths = [(server.port, server.directory / "server.log") for server in self.servers]
        paths += [(port, Path(self._directory) / f"sentinel-{port}.log") for port in self.sentinel_ports]
        return "\n".join(
            f"--- {port}: " + (path.read_text(errors="replace")[-1500:] if path.exists() else "(no log)")
            for port, path in paths
        )

    def master_port(self) -> int:
        """The port of the master as the first sentinel names it now."""
        _, port = self._sentinel(self.sentinel_ports[0]).execute_command(
            "SENTINEL GET-MASTER-ADDR-BY-NAME", self.SERVICE
        )
        return int(port)

    def server_on(self, port: int) -> EmbeddedRedis:
        return next(server for server in self.servers if server.port == port)

    def failover(self) -> None:
        """Ask a sentinel to fail over now (no agreement needed), as an operator would."""
        self._sentinel(self.sentinel_ports[0]).execute_command("SENTINEL FAILOVER", self.SERVICE)

    def stop(self) -> None:
        for process in self._processes:
            process.kill()
            process.wait()
        for server in self.servers:
            server.stop()
