"""What a Redis URL names (one server, a master watched by Sentinel, or a cluster) and the clients that reach it.

The forms, beyond redis-py's own ``redis://``, ``rediss://`` and ``unix://``::

    redis+sentinel://[user:password@]host1:26379,host2:26379/<service_name>[/<db>][?options]
    redis+cluster://[user:password@]host1:7000,host2:7001[?options]

``rediss+`` instead of ``redis+`` speaks TLS to every server (and every
sentinel). *options* are redis-py's URL query options (``ssl_ca_certs``,
``socket_timeout``...), plus ``sentinel_username`` and ``sentinel_password``
for sentinels that require a login of their own. The user and password in front
of the hosts are those of the data servers. redis-py parses the query: these
forms are rewritten into its ``redis://`` form, one host at a time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel

__all__ = ["Address", "Topology", "async_client", "close_async_client", "parse_address", "redact_url", "sync_client"]

_SERVER_SCHEMES = ("redis", "rediss", "unix")
_SCHEMES = (*_SERVER_SCHEMES, "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


class Topology(enum.Enum):
    """Which kind of deployment a URL names."""

    SERVER = "server"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class Address:
    """A parsed URL: the topology, the hosts to ask first, and redis-py's connection options."""

    url: str
    topology: Topology
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""  # the master's name, for Sentinel
    options: dict[str, Any] = field(default_factory=dict)  # for the data servers
    sentinel_options: dict[str, Any] = field(default_factory=dict)


def redact_url(url: str) -> str:
    """Hide a password in *url* so it never lands in an error message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        hidden = parts
    else:
        hidden = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    query = parse_qsl(hidden.query, keep_blank_values=True)
    if any(name == "sentinel_password" for name, _ in query):
        redacted = [(name, "***" if name == "sentinel_password" else value) for name, value in query]
        hidden = hidden._replace(query=urlencode(redacted, safe="*/"))
    return hidden.geturl()


def parse_address(url: str) -> Address:
    """Parse *url*; a malformed one raises ``ValueError`` naming ``url`` (the password redacted)."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"url is malformed ({exc}), got {shown!r}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            "url must start with redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// "
            f"(or rediss+...), got {shown!r}"
        )
    if parts.scheme in _SERVER_SCHEMES:
        return _server(url, parts, shown)
    tls = parts.scheme.startswith("rediss")
    topology = Topology.SENTINEL if parts.scheme.endswith("sentinel") else Topology.CLUSTER
    userinfo, _, netloc = parts.netloc.rpartition("@")
    default_port = 26379 if topology is Topology.SENTINEL else 6379
    hosts = tuple(_host_port(host, shown, default_port) for host in netloc.split(","))
    query = dict(parse_qsl(parts.query))
    sentinel_login = {name.removeprefix("sentinel_"): query.pop(name) for name in _SENTINEL_OPTIONS if name in query}
    segments = [segment for segment in parts.path.split("/") if segment]
    service, db = "", "0"
    if topology is Topology.SENTINEL:
        if not segments or len(segments) > 2:
            raise ValueError(f"url must name the Sentinel service as /<service_name>[/<db>], got {shown!r}")
        service, db = segments[0], segments[1] if len(segments) == 2 else "0"
    elif segments not in ([], ["0"]):
        raise ValueError(f"url of a cluster cannot name a database (a cluster has only db 0), got {shown!r}")
    if not db.isdigit():
        raise ValueError(f"url must end with a database number, got {shown!r}")
    plain = f"{'rediss' if tls else 'redis'}://{userinfo + '@' if userinfo else ''}localhost/{db}"
    try:
        options = redis.connection.parse_url(f"{plain}?{urlencode(query)}" if query else plain)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ValueError(f"url has a bad option ({exc}), got {shown!r}") from None
    del options["host"]
    options.pop("connection_class", None)
    if tls:
        options["ssl"] = True
    if topology is Topology.CLUSTER:
        options.pop("db", None)
    sentinel_options = {**{k: v for k, v in options.items() if k.startswith(("ssl", "socket_"))}, **sentinel_login}
    return Address(url, topology, hosts, service, options, sentinel_options)


def _server(url: str, parts: Any, shown: str) -> Address:
    try:
        parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(f"url is malformed ({exc}), got {shown!r}") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"url must have a socket path, got {shown!r}")
    elif not parts.hostname:
        raise ValueError(f"url must have a host, got {shown!r}")
    return Address(url, Topology.SERVER)


def _host_port(text: str, shown: str, default_port: int) -> tuple[str, int]:
    """One ``host[:port]`` of a multi-host URL (``[::1]:7000`` for IPv6)."""
    try:
        parts = urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"url is malformed ({exc}), got {shown!r}") from None
    if not host:
        raise ValueError(f"url must list host[:port] separated by commas, got {shown!r}")
    return host, default_port if port is None else port


def async_client(url: str, **overrides: Any) -> Any:
    """An asyncio client for *url*: ``Redis``, a Sentinel-managed master's ``Redis``, or ``RedisCluster``."""
    address = parse_address(url)
    if address.topology is Topology.SERVER:
        return redis.asyncio.Redis.from_url(url, **overrides)
    if address.topology is Topology.SENTINEL:
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            address.hosts, sentinel_kwargs=_sentinel_kwargs(address, overrides), **{**overrides, **address.options}
        )
        return sentinel.master_for(address.service)
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in address.hosts]
    return redis.asyncio.RedisCluster(startup_nodes=nodes, **{**_cluster_kwargs(overrides), **address.options})


def sync_client(url: str, **overrides: Any) -> Any:
    """A synchronous client for *url*, as :func:`async_client`."""
    address = parse_address(url)
    if address.topology is Topology.SERVER:
        return redis.Redis.from_url(url, **overrides)
    if address.topology is Topology.SENTINEL:
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            address.hosts, sentinel_kwargs=_sentinel_kwargs(address, overrides), **{**overrides, **address.options}
        )
        return sentinel.master_for(address.service)  # type: ignore[no-untyped-call, unused-ignore]
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in address.hosts]  # type: ignore[no-untyped-call]
    return redis.RedisCluster(startup_nodes=nodes, **{**_cluster_kwargs(overrides), **address.options})


def _sentinel_kwargs(address: Address, overrides: dict[str, Any]) -> dict[str, Any]:
    timeouts = {name: value for name, value in overrides.items() if name.startswith("socket_")}
    return {**timeouts, **address.sentinel_options}


def _cluster_kwargs(overrides: dict[str, Any]) -> dict[str, Any]:
    # The cluster client keeps its own retry policy (it must follow MOVED and failovers for the commands it sends).
    return {name: value for name, value in overrides.items() if name not in ("retry", "retry_on_error")}


async def close_async_client(client: Any) -> None:
    """Close a client from :func:`async_client`, and the connections to its sentinels if it has any."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if manager is not None:
        await manager.aclose()
