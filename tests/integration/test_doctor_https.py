"""``tv2dydx doctor``'s HTTPS look at ``PUBLIC_BASE_URL``, against local HTTPS servers.

The internet is out of reach here, so each outcome is staged on this machine: certificates
made in the test (self-signed, for another host, expired, from a test authority trusted
through ``SSL_CERT_FILE``), a port nobody listens on, and a name under the reserved
``.invalid`` top-level domain, which never resolves.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.runtime.config import Settings
from core.runtime.health import CheckResult
from core.runtime.public_url import check_public_url
from tests.e2e.test_cli import bare_env, free_port, run

MakeSettings = Callable[..., Settings]


@dataclass(frozen=True)
class Pem:
    """A certificate and its key, as files a server loads."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    directory: Path,
    label: str,
    host: str,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    expired: bool = False,
) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``host``: self-signed without ``issuer``, else signed by it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(days=30), now - timedelta(days=1))
        if expired
        else (
            now - timedelta(hours=1),
            now + timedelta(days=30),
        )
    )
    is_ca = issuer is None and host.startswith("Test CA")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(issuer[0].subject if issuer else _name(host))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    certificate = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    pem = Pem(directory / f"{label}.crt", directory / f"{label}.key")
    pem.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem, certificate, key


@dataclass(frozen=True)
class Certificates:
    """The test authority (trusted once ``SSL_CERT_FILE`` names it) and what it and others
    issued."""

    authority: Pem
    valid: Pem
    other_host: Pem
    expired: Pem
    self_signed: Pem


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("certs")
    authority, ca_cert, ca_key = _issue(directory, "ca", "Test CA for tv2dydx doctor")
    issuer = (ca_cert, ca_key)
    return Certificates(
        authority=authority,
        valid=_issue(directory, "valid", "localhost", issuer=issuer)[0],
        other_host=_issue(directory, "other", "other.example", issuer=issuer)[0],
        expired=_issue(directory, "expired", "localhost", issuer=issuer, expired=True)[0],
        self_signed=_issue(directory, "self", "localhost")[0],
    )


@asynccontextmanager
async def https_server(pem: Pem, *, health_status: int = 200) -> AsyncIterator[str]:
    """A local HTTPS server answering ``/healthz`` like tv2dydx; yields its base URL."""

    async def healthz(_request: web.Request) -> web.Response:
        if health_status != 200:
            return web.Response(status=health_status, text="Bad Gateway")
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem.cert, pem.key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    try:
        yield f"https://localhost:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def trust_test_authority(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's ssl reads ``SSL_CERT_FILE`` whenever it loads the default trust store."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.authority.cert))


async def check(make_settings: MakeSettings, url: str) -> dict[str, CheckResult]:
    results = await check_public_url(make_settings(public_base_url=url))
    return {result.name: result for result in results}


@pytest.mark.usefixtures("trust_test_authority")
async def test_a_certificate_from_a_trusted_authority_is_ok(
    certificates: Certificates, make_settings: MakeSettings
) -> None:
    async with https_server(certificates.valid) as url:
        results = await check(make_settings, url)
    assert results["public-url"] == CheckResult(
        "public-url", True, f"{url}/healthz is OK over HTTPS with a valid certificate"
    )
    # Port 4xxxx is not one TradingView posts to: said on its own line.
    assert not results["tradingview"].ok
    assert "TradingView posts webhooks only to ports 80 and 443" in results["tradingview"].detail


async def test_a_self_signed_certificate_is_invalid(
    certificates: Certificates, make_settings: MakeSettings
) -> None:
    async with https_server(certificates.self_signed) as url:
        result = (await check(make_settings, url))["public-url"]
    assert not result.ok
    assert result.detail.startswith("certificate invalid: self-signed"), result.detail


@pytest.mark.usefixtures("trust_test_authority")
async def test_a_certificate_for_another_host_is_invalid(
    certificates: Certificates, make_settings: MakeSettings
) -> None:
    async with https_server(certificates.other_host) as url:
        result = (await check(make_settings, url))["public-url"]
    assert not result.ok
    assert result.detail == (
        "certificate invalid: wrong host: it is for other.example, not localhost"
    )


@pytest.mark.usefixtures("trust_test_authority")
async def test_an_expired_certificate_is_invalid(
    certificates: Certificates, make_settings: MakeSettings
) -> None:
    async with https_server(certificates.expired) as url:
        result = (await check(make_settings, url))["public-url"]
    assert not result.ok
    expired_on = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert result.detail.startswith(f"certificate invalid: expired on {expired_on}"), result.detail


@pytest.mark.usefixtures("trust_test_authority")
async def test_a_health_check_that_is_not_ok_is_named(
    certificates: Certificates, make_settings: MakeSettings
) -> None:
    async with https_server(certificates.valid, health_status=502) as url:
        result = (await check(make_settings, url))["public-url"]
    assert not result.ok
    assert result.detail.startswith(f"{url}/healthz answered HTTP 502, not OK"), result.detail


async def test_a_port_nobody_listens_on_is_connection_refused(
    make_settings: MakeSettings,
) -> None:
    port = free_port()
    result = (await check(make_settings, f"https://localhost:{port}"))["public-url"]
    assert not result.ok
    assert result.detail.startswith(f"connection refused at localhost:{port}"), result.detail


async def test_a_name_that_does_not_resolve_is_named(make_settings: MakeSettings) -> None:
    results = await check(make_settings, "https://tv2dydx-doctor.invalid")
    assert list(results) == ["public-url"]  # port 443: nothing to say about TradingView
    assert not results["public-url"].ok
    assert results["public-url"].detail.startswith("tv2dydx-doctor.invalid does not resolve")


async def test_a_local_http_address_is_a_trial_not_a_failure(make_settings: MakeSettings) -> None:
    results = await check(make_settings, "http://localhost:8080")
    assert results["public-url"].ok
    assert "TradingView and wallets need a public https address" in results["public-url"].detail


async def test_doctor_prints_one_line_per_outcome(
    certificates: Certificates,
    base_env: dict[str, str],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
) -> None:
    async with https_server(certificates.valid) as url:
        env = bare_env(
            {**base_env, **telegram_env, **dydx_env, "PUBLIC_BASE_URL": url},
            SSL_CERT_FILE=str(certificates.authority.cert),
        )
        trusted = await asyncio.to_thread(run, ["doctor"], env, 60)
        env.pop("SSL_CERT_FILE")
        untrusted = await asyncio.to_thread(run, ["doctor"], env, 60)
    assert f"✓ public-url: {url}/healthz is OK over HTTPS with a valid certificate" in (
        trusted.stdout.splitlines()
    ), trusted.stdout
    assert "✗ tradingview: PUBLIC_BASE_URL uses port" in trusted.stdout
    assert trusted.returncode == 1  # that port is of no use to TradingView
    line = next(x for x in untrusted.stdout.splitlines() if x.startswith("✗ public-url"))
    assert line.startswith("✗ public-url: certificate invalid: issued by an authority"), line
    assert "Traceback" not in trusted.stderr + untrusted.stderr
