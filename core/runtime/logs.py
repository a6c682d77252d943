"""Structured logging (structlog) with secret redaction, and optional Sentry.

All stdlib and library loggers (aiohttp, aiogram, arq, SQLAlchemy) are routed through the
same processor chain, so the redaction below applies to every line the process writes.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from importlib import resources
from typing import Any

import structlog

REDACTED = "[REDACTED]"

# Keys whose values are secrets whatever they look like.
_SECRET_KEY_RE = re.compile(
    r"pass(word|phrase)?|secret|token|private_?key|priv_?hex|mnemonic|seed|api_?key|"
    r"authorization|cookie|encryption_keys|dsn|ciphertext|init_?data",
    re.IGNORECASE,
)
# Hashes are not secrets, and a transaction hash has the shape of a private key.
_HASH_KEY_RE = re.compile(r"(^|_)(tx_?hash|body_hash|hash)$", re.IGNORECASE)

_HEX64_RE = re.compile(r"(?<![0-9A-Za-z])(?:0x)?[0-9A-Fa-f]{64}(?![0-9A-Za-z])")
_BOT_TOKEN_RE = re.compile(r"(?<![0-9])\d{5,20}:[A-Za-z0-9_-]{30,64}")
# Secret path segments: webhook, wallet-link and key-form tokens, the Telegram webhook secret.
_PATH_TOKEN_RE = re.compile(r"(/(?:hook|link|key|tg)/)[A-Za-z0-9_.~%-]{6,}")
_WORD_RE = re.compile(r"[a-z]+")
_MNEMONIC_MIN_WORDS = 12


@lru_cache(maxsize=1)
def _bip39_words() -> frozenset[str]:
    # bip_utils (a dependency of dydx-v4-client) ships the official English wordlist.
    text = resources.files("bip_utils.bip.bip39").joinpath("wordlist", "english.txt").read_text()
    return frozenset(text.split())


def _redact_mnemonics(text: str) -> str:
    words = _bip39_words()
    spans: list[tuple[int, int]] = []
    run: list[re.Match[str]] = []

    def close_run() -> None:
        if len(run) >= _MNEMONIC_MIN_WORDS:
            spans.append((run[0].start(), run[-1].end()))
        run.clear()

    for match in _WORD_RE.finditer(text):
        joined = not run or text[run[-1].end() : match.start()].isspace()
        if match.group() in words and joined:
            run.append(match)
            continue
        close_run()
        if match.group() in words:
            run.append(match)
    close_run()
    for start, end in reversed(spans):
        text = f"{text[:start]}{REDACTED}{text[end:]}"
    return text


def redact_text(text: str) -> str:
    """Remove secret-shaped substrings: 64-hex keys, BIP39 phrases, tokens in URL paths."""
    text = _PATH_TOKEN_RE.sub(r"\1***", text)
    text = _BOT_TOKEN_RE.sub(REDACTED, text)
    text = _HEX64_RE.sub(REDACTED, text)
    if len(text.split()) >= _MNEMONIC_MIN_WORDS:
        text = _redact_mnemonics(text)
    return text


_PLAIN, _SECRET, _HASH = "plain", "secret", "hash"


@lru_cache(maxsize=4096)
def _key_kind(key: str) -> str:
    """Whether values under ``key`` are secrets, hashes or plain (log keys are few)."""
    if _HASH_KEY_RE.search(key):
        return _HASH
    return _SECRET if _SECRET_KEY_RE.search(key) else _PLAIN


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact one value, recursing into mappings and sequences.

    Args:
        value: Any loggable value.
        key: The key the value was found under, if any: secret-named keys are blanked.
    """
    kind = _key_kind(key) if key is not None else _PLAIN
    if kind is _SECRET:
        return REDACTED if value not in (None, "") else value
    if isinstance(value, str):
        if kind is _HASH:
            return value
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub every field of the event."""
    for key in list(event_dict):
        event_dict[key] = redact_value(event_dict[key], key)
    return event_dict


class RoutineJobRuns(logging.Filter):
    """Drops arq's per-job start and finish lines (``→`` and ``←``) unless debugging.

    Args:
        debugging: Whether the process logs at DEBUG (then every line passes).
    """

    _ROUTINE = ("%6.2fs → ", "%6.2fs ← ")

    def __init__(self, debugging: bool) -> None:
        super().__init__()
        self._debugging = debugging

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written."""
        return self._debugging or not (
            isinstance(record.msg, str) and record.msg.startswith(self._ROUTINE)
        )


class PollingRetries(logging.Filter):
    """aiogram's polling loop, when Telegram cannot be reached, writes an ERROR and a WARNING
    per retry (for ever, every few seconds, and each ERROR a Sentry event). Here the first
    failure of an outage is one WARNING; the retries are DEBUG (dropped unless debugging),
    and aiogram's ``Connection established`` (INFO) ends the outage.

    Args:
        debugging: Whether the process logs at DEBUG.
    """

    _FAILED = "Failed to fetch updates"
    _SLEEP = "Sleep for "
    _BACK = "Connection established"

    def __init__(self, debugging: bool) -> None:
        super().__init__()
        self._debugging = debugging
        self._failing = False

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (its level lowered when it is routine)."""
        message = record.msg if isinstance(record.msg, str) else ""
        if message.startswith(self._BACK):
            self._failing = False
            return True
        if message.startswith(self._FAILED) and not self._failing:
            self._failing = True
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if message.startswith((self._FAILED, self._SLEEP)):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self._debugging
        return True


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and the stdlib through one redacting chain onto stdout.

    Args:
        level: Minimum level name (DEBUG, INFO, WARNING, ERROR).
        fmt: ``json`` for machines, ``console`` for people.
    """
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.stdlib.ExtraAdder(),
        redact_processor,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless we debug; aiohttp's own access logger is
    # replaced by a redacting one in the web server, so silence the default.
    for name in ("asyncio", "sqlalchemy.engine", "httpx", "hpack", "grpc"):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.WARNING))
    # arq writes two INFO lines per job run (crons every second included): routine, so
    # DEBUG; its start-up, retries and failures stay as they are.
    arq_worker = logging.getLogger("arq.worker")
    arq_worker.filters[:] = [f for f in arq_worker.filters if not isinstance(f, RoutineJobRuns)]
    debugging = logging.getLevelName(level) <= logging.DEBUG
    arq_worker.addFilter(RoutineJobRuns(debugging))
    dispatcher = logging.getLogger("aiogram.dispatcher")
    dispatcher.filters[:] = [f for f in dispatcher.filters if not isinstance(f, PollingRetries)]
    dispatcher.addFilter(PollingRetries(debugging))


def init_sentry(dsn: str | None, *, environment: str, release: str) -> bool:
    """Start Sentry only when a DSN is configured; events pass through the same redaction.

    Returns:
        Whether Sentry was initialised.
    """
    if not dsn:
        return False
    import sentry_sdk  # imported lazily: most installs run without Sentry

    def before_send(event: Any, _hint: Any) -> Any:
        return redact_value(event)

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        before_send=before_send,
        before_breadcrumb=lambda crumb, _hint: redact_value(crumb),
        # Request bodies (the key form's carries a trading key) never go to Sentry.
        max_request_body_size="never",
    )
    return True


def get_logger(name: str | None = None, **context: Any) -> Any:
    """A structlog logger with ``context`` bound."""
    return structlog.get_logger(name).bind(**context)
