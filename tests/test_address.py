"""The URL forms for Sentinel and Cluster: parsing, the errors of malformed ones, and redaction."""

from __future__ import annotations

import pytest

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler._shared.address import Topology, parse_address, redact_url


class TestSentinelUrls:
    """``redis+sentinel://`` names sentinels, a service and a database."""

    def test_hosts_service_db_and_logins(self) -> None:
        """Each host keeps its port (26379 if none), the path gives service and db, logins go where they belong."""
        address = parse_address(
            "redis+sentinel://app:pw@s1:26380,s2,[::1]:26381/mymaster/3?sentinel_password=spw&socket_timeout=2"
        )
        assert address.topology is Topology.SENTINEL
        assert address.hosts == (("s1", 26380), ("s2", 26379), ("::1", 26381))
        assert address.service == "mymaster"
        assert address.options == {"username": "app", "password": "pw", "db": 3, "socket_timeout": 2.0}
        assert address.sentinel_options == {"password": "spw", "socket_timeout": 2.0}

    def test_tls_reaches_servers_and_sentinels(self) -> None:
        """rediss+sentinel:// turns TLS on for both, with redis-py's ssl options."""
        address = parse_address("rediss+sentinel://s1:26379/svc?ssl_cert_reqs=none")
        assert address.options["ssl"] is True
        assert address.sentinel_options["ssl"] is True
        assert address.options["ssl_cert_reqs"] == "none"
        assert address.options["db"] == 0


class TestClusterUrls:
    """``redis+cluster://`` lists seed nodes."""

    def test_seed_nodes(self) -> None:
        """Every seed node is kept, 6379 if no port is given; db 0 is allowed."""
        address = parse_address("redis+cluster://u:p@n1:7000,n2/0")
        assert address.topology is Topology.CLUSTER
        assert address.hosts == (("n1", 7000), ("n2", 6379))
        assert address.options == {"username": "u", "password": "p"}

    def test_tls(self) -> None:
        """rediss+cluster:// turns TLS on."""
        assert parse_address("rediss+cluster://n1:7000").options == {"ssl": True}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s1:26379", "service"),
        ("redis+sentinel://s1:26379/svc/0/extra", "service"),
        ("redis+sentinel://s1:26379/svc/zero", "database number"),
        ("redis+sentinel://s1:notaport/svc", "malformed"),
        ("redis+sentinel://s1:26379,/svc", "host"),
        ("redis+cluster://n1:7000/2", "cannot name a database"),
        ("redis+cluster://n1:99999", "malformed"),
        ("redis+cluster://n1:7000?socket_timeout=soon", "bad option"),
        ("redis+shard://n1:7000", "must start with"),
    ],
)
def test_malformed_urls_name_url(url: str, message: str) -> None:
    """A malformed form raises ValueError naming url, from the handler and from the consumer."""
    for build in (RedisHandler, RedisLogConsumer):
        with pytest.raises(ValueError, match=f"^url .*{message}"):
            build(url=url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://app:s3cret@s1:26379,s2:26379/svc/0?sentinel_password=s3cret",
        "rediss+cluster://app:s3cret@n1:7000,n2:7001",
    ],
)
def test_passwords_are_redacted(url: str) -> None:
    """Neither the servers' nor the sentinels' password shows in a redacted URL, in repr or in an error."""
    assert "s3cret" not in redact_url(url)
    assert "s3cret" not in repr(RedisHandler(url=url))
    with pytest.raises(ValueError, match=r"^url") as caught:
        RedisHandler(url=url.replace(":7000", ":x").replace("/svc/0", "/svc/x"))
    assert "s3cret" not in str(caught.value)
