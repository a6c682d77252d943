"""Runtime configuration, read from the environment (and an optional ``.env`` file).

Settings are built only by entry points (:func:`load_settings`); nothing in this module
runs at import time. Environment variable names are a public contract.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.runtime.processes import default_worker_processes
from core.security.crypto import Keyring, KeyringError
from core.security.sealing import SealingKeyError, SealingPublicKey

TELEGRAM_OFFICIAL_API = "https://api.telegram.org"
# TradingView's published webhook sender addresses.
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BOT_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,64}$")
_WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
_HOST_PORT_RE = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


@dataclass(frozen=True, slots=True)
class DydxEndpoints:
    """Where the dYdX v4 network is reached.

    Attributes:
        network: ``mainnet``, ``testnet`` or ``custom``.
        indexer_url: Indexer REST base URL, without a trailing slash.
        indexer_ws_url: Indexer WebSocket URL (``.../v4/ws``).
        node_url: Full node gRPC endpoint as ``host:port``.
        node_tls: Whether the gRPC channel uses TLS.
        chain_id: Cosmos chain id the transactions are signed for.
    """

    network: str
    indexer_url: str
    indexer_ws_url: str
    node_url: str
    node_tls: bool
    chain_id: str


NETWORK_PRESETS: dict[str, DydxEndpoints] = {
    "mainnet": DydxEndpoints(
        network="mainnet",
        indexer_url="https://indexer.dydx.trade",
        indexer_ws_url="wss://indexer.dydx.trade/v4/ws",
        node_url="dydx-ops-grpc.kingnodes.com:443",
        node_tls=True,
        chain_id="dydx-mainnet-1",
    ),
    "testnet": DydxEndpoints(
        network="testnet",
        indexer_url="https://indexer.v4testnet.dydx.exchange",
        indexer_ws_url="wss://indexer.v4testnet.dydx.exchange/v4/ws",
        node_url="test-dydx-grpc.kingnodes.com:443",
        node_tls=True,
        chain_id="dydx-testnet-4",
    ),
}

# What each variable expects, in the words used when it is missing or invalid.
EXPECTED: dict[str, str] = {
    "BOT_TOKEN": (
        "the token @BotFather gave you (/newbot, or /token for an existing bot): the bot's "
        "numeric id, a colon, then 30-64 letters, digits, _ or -, like 123456789:AAH... "
        "(about 46 characters in all, no spaces or quotes)"
    ),
    "TELEGRAM_API_BASE": "an http(s) URL of a Bot API server (default https://api.telegram.org)",
    "TELEGRAM_MODE": "'polling' (default) or 'webhook'",
    "TELEGRAM_WEBHOOK_SECRET": (
        "16-256 characters of A-Z a-z 0-9 _ - (required when TELEGRAM_MODE=webhook)"
    ),
    "PUBLIC_BASE_URL": "the public https URL of the web server, like https://tv2dydx.example.com",
    "WEB_HOST": "the address the web server binds to, like 0.0.0.0",
    "WEB_PORT": "a TCP port number from 1 to 65535",
    "WEB_PROCESSES": "a whole number of web server processes from 1 to 64 (default 1)",
    "WORKER_PROCESSES": (
        "a whole number of worker processes from 1 to 64 (default: half the cores, 1 to 8)"
    ),
    "DATABASE_URL": "a PostgreSQL URL like postgresql://user:password@localhost:5432/tv2dydx",
    "REDIS_URL": "a Redis URL like redis://localhost:6379/0",
    "ENCRYPTION_KEYS": (
        "a keyring 'id:base64key[,id:base64key...]', primary first "
        "(make one with: tv2dydx keys generate); the worker's secret, give it to no other process"
    ),
    "KEY_SEALING_PUBLIC_KEY": (
        "the worker's public sealing key 'id:base64key' (print it with: tv2dydx keys public); "
        "the bot and the web seal API trading keys to it"
    ),
    "DYDX_NETWORK": "'mainnet' (default), 'testnet' or 'custom'",
    "DYDX_INDEXER_URL": "the Indexer REST URL, like https://indexer.dydx.trade",
    "DYDX_INDEXER_WS_URL": "the Indexer WebSocket URL, like wss://indexer.dydx.trade/v4/ws",
    "DYDX_NODE_URL": "the full node gRPC endpoint as host:port, like grpc.example.com:443",
    "DYDX_NODE_TLS": "true or false",
    "DYDX_CHAIN_ID": "the chain id, like dydx-mainnet-1",
    "WEBHOOK_IP_ALLOWLIST": "comma-separated IPs or CIDR networks, or * to allow any sender",
    "TRUSTED_PROXIES": "comma-separated IPs or CIDR networks of your reverse proxies",
    "ALERT_MAX_LAG_SECONDS": "a whole number of seconds from 1 to 3600 (default 60)",
    "ALERT_RATE_PER_TOKEN": "alerts per minute one webhook URL may send (default 60)",
    "ALERT_RATE_PER_IP": "alerts per minute one sender address may send (default 3000)",
    "LINK_RATE_PER_TOKEN": "link-page requests per minute for one link (default 30)",
    "LINK_RATE_PER_IP": "link-page requests per minute from one address (default 120)",
    "PROTECTION_LEG_LIFETIME_SECONDS": (
        "seconds from 10 to 8208000 (95 days, the chain's limit; default 2419200, 28 days)"
    ),
    "PROTECTION_RENEW_BEFORE_SECONDS": (
        "seconds from 2 to half of PROTECTION_LEG_LIFETIME_SECONDS (default 259200, 3 days)"
    ),
    "ETHEREUM_RPC_URL": (
        "an http(s) Ethereum JSON-RPC URL, used to verify contract-wallet (ERC-1271) "
        "signatures, or leave unset"
    ),
    "SENTRY_DSN": "a Sentry DSN URL, or leave unset",
    "LOG_LEVEL": "DEBUG, INFO (default), WARNING or ERROR",
    "LOG_FORMAT": "'json' (default) or 'console'",
}
REQUIRED = ("BOT_TOKEN", "PUBLIC_BASE_URL", "DATABASE_URL", "REDIS_URL")
#: Which secret each process needs beyond ``REQUIRED`` (issue #13: only the worker decrypts).
PROCESS_SECRETS: dict[str, tuple[str, ...]] = {
    "worker": ("ENCRYPTION_KEYS",),
    "bot": ("KEY_SEALING_PUBLIC_KEY",),  # or ENCRYPTION_KEYS, from which it is derived
    "web": ("KEY_SEALING_PUBLIC_KEY",),  # the Mini App key form seals keys like the bot
}


class ConfigError(Exception):
    """The environment does not describe a runnable service.

    Attributes:
        problems: One plain-words line per offending variable.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _parse_networks(items: list[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _is_local_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in {"localhost", "127.0.0.1", "::1"} or host.endswith(".localhost")


class Settings(BaseSettings):
    """All tv2dydx settings. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,  # `NAME=` in .env means "not set", as in .env.example
        frozen=True,
    )

    bot_token: SecretStr
    telegram_api_base: str = TELEGRAM_OFFICIAL_API
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: SecretStr | None = None
    public_base_url: str
    web_host: str = "0.0.0.0"  # noqa: S104 - a container's server must listen on all interfaces
    web_port: int = Field(default=8080, ge=1, le=65535)
    # Processes sharing WEB_PORT (SO_REUSEPORT): one per core for a busy alert intake.
    web_processes: int = Field(default=1, ge=1, le=64)
    # Worker processes sharing the queue, each with its own pools. Half the cores by default:
    # the web server, PostgreSQL and Redis run beside them, and on 2 cores a second worker
    # made a burst slower and costlier (docs/benchmarks.md, #15 fifth round).
    worker_processes: int = Field(default_factory=default_worker_processes, ge=1, le=64)
    database_url: SecretStr
    redis_url: SecretStr
    # Only the worker holds the keyring; the bot and the web hold the public sealing key only.
    encryption_keys: SecretStr | None = None
    key_sealing_public_key: str | None = None
    dydx_network: Literal["mainnet", "testnet", "custom"] = "mainnet"
    dydx_indexer_url: str | None = None
    dydx_indexer_ws_url: str | None = None
    dydx_node_url: str | None = None
    dydx_node_tls: bool | None = None
    dydx_chain_id: str | None = None
    webhook_ip_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(TRADINGVIEW_IPS)
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_max_lag_seconds: int = Field(default=60, ge=1, le=3600)
    alert_rate_per_token: int = Field(default=60, ge=1, le=1_000_000)
    # TradingView's four sender addresses are shared by every user of the instance.
    alert_rate_per_ip: int = Field(default=3000, ge=1, le=10_000_000)
    # The wallet-link page and its calls (a person's browser, not a bot): per link, per IP.
    link_rate_per_token: int = Field(default=30, ge=1, le=1_000_000)
    link_rate_per_ip: int = Field(default=120, ge=1, le=10_000_000)
    # The real-time position monitor in the worker (Indexer WebSocket, REST catch-up).
    monitor_enabled: bool = True
    # Lease on each watched subaccount: a dead worker's subaccounts are taken over within it.
    monitor_lease_seconds: float = Field(default=15.0, ge=0.3, le=300)
    # Polling interval of a subaccount while its WebSocket subscription is down.
    monitor_poll_seconds: float = Field(default=3.0, ge=0.1, le=60)
    # Every watched subaccount is also caught up over REST this often.
    monitor_catch_up_seconds: float = Field(default=60.0, ge=1, le=3600)
    # Take-profit / stop-loss legs rest this long (good_til_block_time; the chain allows at
    # most 95 days ahead) and are renewed (new before old) this long before they expire.
    protection_leg_lifetime_seconds: float = Field(default=28 * 86400, ge=10, le=95 * 86400)
    protection_renew_before_seconds: float = Field(default=3 * 86400, ge=2, le=94 * 86400)
    # Often carries a provider API key in its path, hence secret.
    ethereum_rpc_url: SecretStr | None = None
    sentry_dsn: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    # Diagnostics: a file the web and worker processes append their event loop's worst
    # stall to, once a second (core.runtime.loopwatch); unset starts nothing.
    loop_stall_report: str | None = None

    @field_validator("bot_token")
    @classmethod
    def _check_bot_token(cls, value: SecretStr) -> SecretStr:
        if not _BOT_TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("malformed")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET_RE.match(value.get_secret_value()):
            raise ValueError("malformed")
        return value

    @field_validator("telegram_api_base", "public_base_url", "dydx_indexer_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("not an http(s) URL")
        return value.rstrip("/")

    @field_validator("ethereum_rpc_url")
    @classmethod
    def _check_rpc_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("dydx_indexer_ws_url")
    @classmethod
    def _check_ws_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"ws", "wss"}:
            raise ValueError("not a ws(s) URL")
        return value

    @field_validator("dydx_node_url")
    @classmethod
    def _check_node_url(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_PORT_RE.match(value):
            raise ValueError("not host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        scheme, sep, rest = raw.partition("://")
        if not sep or scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
            raise ValueError("not a PostgreSQL URL")
        if not urlsplit(raw).hostname and "host=" not in rest:
            raise ValueError("no host")
        return SecretStr(f"postgresql+asyncpg://{rest}")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr) -> SecretStr:
        if urlsplit(value.get_secret_value()).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("not a Redis URL")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_keyring(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            Keyring.parse(value.get_secret_value())
        except KeyringError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("key_sealing_public_key")
    @classmethod
    def _check_sealing_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            SealingPublicKey.parse(value)
        except SealingKeyError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("webhook_ip_allowlist", "trusted_proxies", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("webhook_ip_allowlist", "trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        if value == ["*"]:
            return value
        _parse_networks(value)  # raises ValueError on a bad entry
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.telegram_mode == "webhook" and self.telegram_webhook_secret is None:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET: required when TELEGRAM_MODE=webhook")
        if self.dydx_network == "custom":
            missing = [
                name.upper()
                for name in ("dydx_indexer_url", "dydx_indexer_ws_url", "dydx_node_url")
                if getattr(self, name) is None
            ]
            if self.dydx_chain_id is None:
                missing.append("DYDX_CHAIN_ID")
            if missing:
                raise ValueError(f"{', '.join(missing)}: required when DYDX_NETWORK=custom")
        if self.protection_renew_before_seconds > self.protection_leg_lifetime_seconds / 2:
            raise ValueError(
                "PROTECTION_RENEW_BEFORE_SECONDS: must be at most half of "
                "PROTECTION_LEG_LIFETIME_SECONDS (a renewed leg must rest a while before "
                "it is renewed again)"
            )
        if not self.public_base_url.startswith("https://") and not _is_local_host(
            self.public_base_url
        ):
            raise ValueError(
                "PUBLIC_BASE_URL: must be https:// (TradingView and wallets need TLS); "
                "plain http is allowed only for localhost"
            )
        return self

    # Derived views -----------------------------------------------------------------

    @property
    def keyring(self) -> Keyring:
        """The parsed encryption keyring (the worker's and ``tv2dydx keys``' only).

        Raises:
            ConfigError: ``ENCRYPTION_KEYS`` is not set in this process.
        """
        if self.encryption_keys is None:
            raise ConfigError([_missing("ENCRYPTION_KEYS")])
        return Keyring.parse(self.encryption_keys.get_secret_value())

    @property
    def has_keyring(self) -> bool:
        """Whether this process was given ``ENCRYPTION_KEYS``."""
        return self.encryption_keys is not None

    @property
    def sealing_key(self) -> SealingPublicKey:
        """The worker's public sealing key: ``KEY_SEALING_PUBLIC_KEY``, else derived from the
        keyring when this process has one.

        Raises:
            ConfigError: Neither is set.
        """
        if self.key_sealing_public_key is not None:
            return SealingPublicKey.parse(self.key_sealing_public_key)
        if self.encryption_keys is not None:
            return self.keyring.sealing_key()
        raise ConfigError([_missing("KEY_SEALING_PUBLIC_KEY")])

    def problems_for(self, process: str) -> list[str]:
        """What ``process`` (``web``, ``bot``, ``worker``) lacks to start, one line each."""
        needed = PROCESS_SECRETS.get(process, ())
        if "ENCRYPTION_KEYS" in needed and self.encryption_keys is None:
            return [_missing("ENCRYPTION_KEYS")]
        if "KEY_SEALING_PUBLIC_KEY" in needed and (
            self.key_sealing_public_key is None and self.encryption_keys is None
        ):
            return [_missing("KEY_SEALING_PUBLIC_KEY")]
        return []

    @property
    def dydx(self) -> DydxEndpoints:
        """The dYdX endpoints: the preset for mainnet/testnet, overridable one by one."""
        base = NETWORK_PRESETS.get(self.dydx_network)
        if base is None:  # custom: every value was checked present above
            assert self.dydx_indexer_url and self.dydx_indexer_ws_url  # noqa: PT018
            assert self.dydx_node_url and self.dydx_chain_id  # noqa: PT018
            return DydxEndpoints(
                network="custom",
                indexer_url=self.dydx_indexer_url,
                indexer_ws_url=self.dydx_indexer_ws_url,
                node_url=self.dydx_node_url,
                node_tls=True if self.dydx_node_tls is None else self.dydx_node_tls,
                chain_id=self.dydx_chain_id,
            )
        return DydxEndpoints(
            network=base.network,
            indexer_url=self.dydx_indexer_url or base.indexer_url,
            indexer_ws_url=self.dydx_indexer_ws_url or base.indexer_ws_url,
            node_url=self.dydx_node_url or base.node_url,
            node_tls=base.node_tls if self.dydx_node_tls is None else self.dydx_node_tls,
            chain_id=self.dydx_chain_id or base.chain_id,
        )

    @property
    def webhook_allowlist(self) -> list[IPNetwork] | None:
        """Networks allowed to call webhooks, or ``None`` when any sender is allowed."""
        if self.webhook_ip_allowlist == ["*"]:
            return None
        return _parse_networks(self.webhook_ip_allowlist)

    @property
    def trusted_proxy_networks(self) -> list[IPNetwork]:
        """Networks whose ``X-Forwarded-For`` hops are trusted."""
        return _parse_networks(self.trusted_proxies)


def _missing(name: str) -> str:
    return f"{name} is not set: expected {EXPECTED[name]}"


def _describe(error: Mapping[str, Any]) -> str:
    loc = error.get("loc") or ()
    message = str(error.get("msg", "invalid"))
    if not loc:
        # model-level checks already name their variables
        return message.removeprefix("Value error, ")
    name = str(loc[0]).upper()
    expected = EXPECTED.get(name, "a valid value")
    if error.get("type") == "missing":
        return f"{name} is not set: expected {expected}"
    return f"{name} is invalid: expected {expected}"


def load_settings(env_file: str | None = ".env", **overrides: Any) -> Settings:
    """Build the settings from the environment.

    Args:
        env_file: An optional dotenv file read below the real environment; ``None`` to skip.
        **overrides: Explicit values (tests and tools), taking precedence over everything.

    Returns:
        The validated settings.

    Raises:
        ConfigError: With one plain-words line per missing or invalid variable. Values are
            never echoed, since several of them are secrets.
    """
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(err) for err in exc.errors()))
        raise ConfigError(problems) from None
    if _is_placeholder(settings.public_base_url):
        raise ConfigError(
            [
                f"PUBLIC_BASE_URL is still the example's placeholder ({PLACEHOLDER_BASE_URL}): "
                "set it to the public https address TradingView and wallets reach this server at"
            ]
        )
    return settings


# .env.example's value: a configuration that still has it was copied and not filled in.
PLACEHOLDER_BASE_URL = "https://tv2dydx.example.com"


def _is_placeholder(url: str) -> bool:
    return urlsplit(url).hostname == urlsplit(PLACEHOLDER_BASE_URL).hostname
