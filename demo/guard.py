"""What keeps the demo offline: it refuses to start when the environment points the product
at a real service, and builds the product's environment from scratch, every endpoint forced
to the doubles, then checks the result once more before any process starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

#: Variables that name a remote service the product would talk to.
NETWORK_VARIABLES = (
    "TELEGRAM_API_BASE",
    "PUBLIC_BASE_URL",
    "DYDX_INDEXER_URL",
    "DYDX_INDEXER_WS_URL",
    "DYDX_NODE_URL",
    "ETHEREUM_RPC_URL",
    "SENTRY_DSN",
)
#: Variables whose value selects a real network by name.
NETWORK_NAMES = {"DYDX_NETWORK": "custom"}
#: Endpoints the demo must set itself: unset, the product would use the real ones.
REQUIRED_ENDPOINTS = (
    "TELEGRAM_API_BASE",
    "PUBLIC_BASE_URL",
    "DYDX_INDEXER_URL",
    "DYDX_INDEXER_WS_URL",
    "DYDX_NODE_URL",
)
#: Variables the product's processes inherit from the demo's own environment (nothing else).
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "MPLCONFIGDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class NotOfflineError(Exception):
    """The environment would let the demo reach a real service.

    Attributes:
        problems: One plain line per offending variable (values never echoed: some are
            secrets).
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _host(value: str) -> str:
    """The host of a URL, or of ``host:port`` (the gRPC node's form)."""
    if "://" in value:
        return (urlsplit(value).hostname or "").lower()
    if value.startswith("["):  # [v6]:port
        return value[1:].split("]", 1)[0].lower()
    return (value.rsplit(":", 1)[0] if value.count(":") == 1 else value).lower()


def _is_loopback(value: str) -> bool:
    host = _host(value)
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def offline_problems(env: Mapping[str, str]) -> list[str]:
    """Why ``env`` is not offline: one line per variable that points at a real service."""
    problems = []
    for name in NETWORK_VARIABLES:
        value = env.get(name, "").strip()
        if value and not _is_loopback(value):
            problems.append(
                f"{name} points at a real service; the demo only talks to its simulated "
                "Telegram and dYdX: unset it (or run the demo from a clean shell)"
            )
    for name, allowed in NETWORK_NAMES.items():
        value = env.get(name, "").strip()
        if value and value != allowed:
            problems.append(
                f"{name}={value} selects a real dYdX network; the demo only trades on its "
                "simulated exchange: unset it"
            )
    return problems


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse to start when the demo's own environment names a real service.

    Raises:
        NotOfflineError: With one line per offending variable.
    """
    problems = offline_problems(os.environ if environ is None else environ)
    if problems:
        raise NotOfflineError(problems)


def product_environment(
    forced: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the product's processes: a few harmless variables of ours, then
    ``forced`` (every endpoint the doubles', generated secrets), checked offline.

    Coverage's own variables pass too, so a measured test run measures the product.

    Raises:
        NotOfflineError: ``forced`` itself names a real service (a bug in the demo).
    """
    source = os.environ if environ is None else environ
    env = {name: source[name] for name in PASSED_THROUGH if name in source}
    env.update({k: v for k, v in source.items() if k.startswith("COVERAGE_")})
    env.update(forced)
    check_environment(env)
    # Unset, these would fall back to the real services' defaults.
    missing = [name for name in REQUIRED_ENDPOINTS if not env.get(name)]
    if missing or env.get("DYDX_NETWORK") != "custom":
        raise NotOfflineError(
            [f"{name} must point at a double" for name in missing]
            + (["DYDX_NETWORK must be 'custom'"] if env.get("DYDX_NETWORK") != "custom" else [])
        )
    return env
