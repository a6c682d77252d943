"""``tv2dydx doctor``'s look at ``PUBLIC_BASE_URL``: can TradingView and wallets reach it?

TradingView delivers webhooks only over a public address on ports 80 and 443, and a wallet's
browser refuses a page whose certificate it does not trust. So the doctor resolves the host,
then asks ``/healthz`` over HTTPS with the system's trust store (``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` add to it, as everywhere in Python's ``ssl``), and says in one line which of
these it found: does not resolve, connection refused, certificate invalid (and why), health
not OK, or OK. Every step is bounded by a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from core.runtime.config import Settings
from core.runtime.health import CheckResult

NAME = "public-url"
#: Seconds for the DNS answer, and for connecting, the TLS handshake and ``/healthz``.
DNS_TIMEOUT = 3.0
HTTP_TIMEOUT = 4.0
#: The ports TradingView posts webhooks to.
TRADINGVIEW_PORTS = (80, 443)

# OpenSSL's X509_V_ERR_* codes, in the words a person acts on.
_NOT_YET_VALID = 9
_EXPIRED = 10
_SELF_SIGNED = (18, 19)  # the certificate itself, or a root in the chain nobody trusts
_UNKNOWN_ISSUER = (2, 20, 21)
_WRONG_HOST = 62


async def check_public_url(settings: Settings) -> list[CheckResult]:
    """Whether ``PUBLIC_BASE_URL`` is a public HTTPS address that serves tv2dydx.

    The example's placeholder never gets here: :func:`~core.runtime.config.load_settings`
    refuses it.

    Args:
        settings: The validated settings.

    Returns:
        One ``public-url`` line, and a ``tradingview`` line when the port is one TradingView
        does not post to.
    """
    url = settings.public_base_url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https":
        # Settings allow plain http only for a local address: a trial, not a failure.
        return [
            CheckResult(
                NAME,
                True,
                f"{url} is a local address: fine for trying tv2dydx out, but TradingView and "
                "wallets need a public https address (README: HTTPS for TradingView)",
            )
        ]
    port = parts.port or 443
    results = [await _check_https(url, host, port)]
    if port not in TRADINGVIEW_PORTS:
        results.append(
            CheckResult(
                "tradingview",
                False,
                f"PUBLIC_BASE_URL uses port {port}, but TradingView posts webhooks only to "
                "ports 80 and 443: serve it on 443 (the compose https profile, or your proxy)",
            )
        )
    return results


async def _check_https(url: str, host: str, port: int) -> CheckResult:
    try:
        await _resolve(host, port)
    except TimeoutError:
        return _fail(f"{host} does not resolve: no DNS answer within {DNS_TIMEOUT:g} s")
    except OSError as exc:
        return _fail(
            f"{host} does not resolve ({_dns_reason(exc)}): "
            "give it an A or AAAA record pointing at this host"
        )
    health = f"{url}/healthz"
    context = ssl.create_default_context()  # the system trust store, plus SSL_CERT_FILE
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)) as http,
            http.get(health, ssl=context, allow_redirects=False) as response,
        ):
            status = response.status
            body = await response.json(content_type=None) if status == 200 else None
    except aiohttp.ClientConnectorCertificateError as exc:
        return _fail(f"certificate invalid: {await _certificate_reason(exc, host, port)}")
    except aiohttp.ClientConnectorDNSError:
        return _fail(f"{host} does not resolve")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, ConnectionRefusedError):
            return _fail(
                f"connection refused at {host}:{port}: nothing listens there "
                "(is Caddy or your proxy running, and the port open?)"
            )
        return _fail(f"cannot connect to {host}:{port} ({_short(exc.os_error)})")
    except aiohttp.ClientSSLError as exc:
        return _fail(f"no TLS at {host}:{port} ({_short(exc)}): does it serve HTTPS there?")
    except TimeoutError:
        return _fail(
            f"{host}:{port} did not answer within {HTTP_TIMEOUT:g} s "
            "(a firewall dropping the port?)"
        )
    except (aiohttp.ClientError, ValueError) as exc:
        return _fail(f"{health} did not answer properly ({type(exc).__name__})")
    if status != 200:
        return _fail(
            f"{health} answered HTTP {status}, not OK: the certificate is valid, but the "
            "address does not reach tv2dydx's web server"
        )
    if not isinstance(body, dict) or body.get("status") != "ok":
        return _fail(f"{health} answered, but not as tv2dydx: does it point at the web server?")
    return CheckResult(NAME, True, f"{health} is OK over HTTPS with a valid certificate")


def _fail(detail: str) -> CheckResult:
    return CheckResult(NAME, False, detail)


def _short(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _dns_reason(exc: OSError) -> str:
    if exc.errno in {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}:
        return "no such name in DNS"
    if exc.errno == socket.EAI_AGAIN:
        return "the name server did not answer"
    return _short(exc)


async def _resolve(host: str, port: int) -> None:
    """``getaddrinfo`` in a daemon thread: a hung resolver cannot keep doctor from exiting
    (the loop's executor would be waited for at shutdown)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseException | None] = loop.create_future()

    def settle(outcome: BaseException | None) -> None:
        if not done.done():
            done.set_result(outcome)

    def work() -> None:
        outcome: BaseException | None = None
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            outcome = exc
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop is gone: nobody waits any more
            return

    threading.Thread(target=work, name="doctor-dns", daemon=True).start()
    outcome = await asyncio.wait_for(done, DNS_TIMEOUT)
    if outcome is not None:
        raise outcome


async def _certificate_reason(
    exc: aiohttp.ClientConnectorCertificateError, host: str, port: int
) -> str:
    error = exc.certificate_error
    code = getattr(error, "verify_code", None)
    message = getattr(error, "verify_message", None) or _short(error)
    if code in _SELF_SIGNED:
        return "self-signed (no trusted authority issued it; Caddy gets a trusted one by itself)"
    if code == _WRONG_HOST:
        names = await _peer_detail(host, port, _certificate_names)
        return f"wrong host: it is for {names or 'other names'}, not {host}"
    if code == _EXPIRED:
        when = await _peer_detail(host, port, _expiry)
        return f"expired{f' on {when}' if when else ''}: renew it"
    if code == _NOT_YET_VALID:
        return "not valid yet: check this host's clock and the certificate's dates"
    if code in _UNKNOWN_ISSUER:
        return (
            f"issued by an authority this machine does not trust ({message}), or the server "
            "does not send its intermediate certificates"
        )
    return message


async def _peer_detail(host: str, port: int, describe: Callable[[x509.Certificate], str]) -> str:
    """What the server's certificate says, read over a second, unverified handshake."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read what it presents, nothing is sent
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), HTTP_TIMEOUT
        )
    except (OSError, TimeoutError):
        return ""
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return describe(x509.load_der_x509_certificate(der)) if der else ""
    except ValueError:
        return ""
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


def _certificate_names(certificate: x509.Certificate) -> str:
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return ", ".join(names[:5])


def _expiry(certificate: x509.Certificate) -> str:
    return certificate.not_valid_after_utc.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
