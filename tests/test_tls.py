"""TLS against a real redis-server: rediss:// with a CA, mutual TLS, and a wrong CA that loses nothing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from redis_log_handler import RedisHandler, RedisLogConsumer
from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import log_through, read_stream, wait_until
from .readers import collecting, documents, new_logger_name, running, write_stream

pytestmark = pytest.mark.slow


def _openssl(*arguments: str | Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True, timeout=60)


def _issue(directory: Path, name: str, ca: str, *, server: bool) -> None:
    """A key and a certificate for *name*, signed by the CA *ca* (for loopback when *server*)."""
    key, request, certificate = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt"))
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", f"/CN={name}")
    extensions = directory / f"{name}.ext"
    # What Python 3.13's strict verification (VERIFY_X509_STRICT) requires of a leaf certificate.
    usage = (
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
        if server
        else "extendedKeyUsage=clientAuth"
    )
    extensions.write_text(
        f"{usage}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "x509", "-req", "-in", request, "-CA", directory / f"{ca}.crt", "-CAkey", directory / f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-out", certificate, "-extfile", extensions,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate; and a second, unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH")
    directory = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
            "-keyout", directory / f"{ca}.key", "-out", directory / f"{ca}.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )  # fmt: skip
    _issue(directory, "server", "ca", server=True)
    _issue(directory, "client", "ca", server=False)
    return directory


@pytest.fixture(scope="module")
def tls_server(certificates: Path) -> Iterator[tuple[EmbeddedRedis, int]]:
    """A server with a TLS port that requires client certificates (its plain port is for readiness checks)."""
    port = _free_port()
    server = EmbeddedRedis(
        "--tls-port", str(port),
        "--tls-cert-file", str(certificates / "server.crt"),
        "--tls-key-file", str(certificates / "server.key"),
        "--tls-ca-cert-file", str(certificates / "ca.crt"),
        "--tls-auth-clients", "yes",
    )  # fmt: skip
    try:
        server.start()
    except RuntimeError as exc:
        if "TLS" in str(exc):
            pytest.skip(f"this server binary has no TLS support: {server.binary}")
        raise
    yield server, port
    server.stop()


def tls_url(certificates: Path, port: int, *, ca: str = "ca", client: bool = True) -> str:
    """A rediss:// URL trusting *ca*, with the client certificate when *client*."""
    query = f"ssl_ca_certs={quote(str(certificates / f'{ca}.crt'))}"
    if client:
        query += f"&ssl_certfile={quote(str(certificates / 'client.crt'))}"
        query += f"&ssl_keyfile={quote(str(certificates / 'client.key'))}"
    return f"rediss://127.0.0.1:{port}/0?{query}"


def test_mutual_tls(
    certificates: Path, tls_server: tuple[EmbeddedRedis, int], key: str, make_handler: Callable[..., RedisHandler]
) -> None:
    """With the CA and a client certificate, the handler writes over TLS and the consumer reads over TLS."""
    server, port = tls_server
    url = tls_url(certificates, port)
    handler = make_handler(url=url, key=key)
    log_through(handler, 500)
    assert handler.flush(10) is True
    with redis.Redis.from_url(server.url) as plain:
        assert [int(document["message"]) for document in read_stream(plain, key)] == list(range(500))
        name = new_logger_name()
        write_stream(plain, f"{key}:in", documents(50, name))
    consumer = RedisLogConsumer(url=url, key=f"{key}:in", block=0.1, claim_idle=1.0)
    with collecting(name) as collector, running(consumer):
        wait_until(lambda: len(collector.records) == 50)


def test_without_a_client_certificate_the_server_refuses(
    certificates: Path,
    tls_server: tuple[EmbeddedRedis, int],
    key: str,
    make_handler: Callable[..., RedisHandler],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that requires client certificates refuses one without: reported, and nothing is dropped."""
    _, port = tls_server
    handler = make_handler(url=tls_url(certificates, port, client=False), key=key)
    log_through(handler, 100)
    assert handler.flush(1.0) is False
    stats = handler.stats()
    assert (stats["written"], stats["dropped"], stats["buffered"]) == (0, 0, 100)
    assert "cannot reach Redis" in capsys.readouterr().err


def test_a_wrong_ca_keeps_the_records_until_the_configuration_is_fixed(
    certificates: Path,
    tls_server: tuple[EmbeddedRedis, int],
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CA that did not sign the server: one clear diagnostic; spilled records reach Redis once the CA is fixed."""
    server, port = tls_server
    wrong = RedisHandler(url=tls_url(certificates, port, ca="other-ca"), key=key, spill_dir=tmp_path, close_timeout=1)
    log_through(wrong, 300)
    assert wrong.flush(1.0) is False
    assert wrong.stats()["written"] == 0
    wrong.close()  # the records stay on disk
    err = capsys.readouterr().err
    assert "certificate verify failed" in err
    assert "stay in" in err
    fixed = RedisHandler(url=tls_url(certificates, port), key=key, spill_dir=tmp_path, close_timeout=2)
    try:
        with redis.Redis.from_url(server.url) as plain:
            wait_until(lambda: len(read_stream(plain, key)) == 300)
            assert [int(document["message"]) for document in read_stream(plain, key)] == list(range(300))
    finally:
        fixed.close()
