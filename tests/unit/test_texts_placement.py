"""Where user-facing sentences live: in ``core/texts``, not in the services that raise them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.exchange.orders import OrderKind
from core.services.control.notify import NotifyRefusal
from core.texts import notify as notify_texts
from core.texts import trading as trading_texts

ROOT = Path(__file__).resolve().parents[2]
# Services and venue modules (folders or files) whose every sentence for the trader is in
# core/texts.
SENTENCE_FREE = (
    "core/services/wallet_link",
    "core/services/control",
    "core/services/planning.py",
    "core/services/credentials.py",
    "core/services/manual.py",
    "core/services/key_watch.py",
    "core/exchange/provider.py",
    "core/exchange/errors.py",
    "core/exchange/keys.py",
    "core/exchange/dydx/errors.py",
    "core/exchange/dydx/keys.py",
    "core/exchange/grid.py",
    "core/services/execution",
    "core/services/protection",
    "core/services/intake.py",
    "core/services/trading.py",
    "core/services/analytics",
)
MAX_LITERAL_CHARS = 40
# Calls whose string arguments are for operators, not traders (log events, audit records).
OPERATOR_CALLS = frozenset(
    {"debug", "info", "warning", "error", "exception", "critical", "record", "get_logger"}
    # Diagnostics caught inside the venue, never shown: why the chain cannot initialise an
    # authenticator.
    | {"AuthenticatorInitError"}
)
# What core/texts may not import at run time (only the view types, for the type checker):
# texts depend on core.domain, never the other way round.
NOT_FOR_TEXTS = ("core.services", "core.exchange", "core.db", "bot", "webhook_server", "workers")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _operator_strings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            if name in OPERATOR_CALLS:
                found.update(id(sub) for sub in ast.walk(node))
    return found


def _sentences(path: Path) -> list[str]:
    """String literals (an f-string as one, its fields as ``{}``) that read like sentences."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree) | _operator_strings(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
            text = "".join(
                part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if len(text) > MAX_LITERAL_CHARS and " " in text:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]!r}")
    return found


def _modules(place: str) -> list[Path]:
    path = ROOT / place
    return [path] if path.is_file() else sorted(path.glob("*.py"))


@pytest.mark.parametrize("place", SENTENCE_FREE)
def test_services_hold_no_sentences(place: str) -> None:
    assert _modules(place)
    found = [line for path in _modules(place) for line in _sentences(path)]
    assert found == [], "move these to core/texts:\n" + "\n".join(found)


def test_the_check_sees_a_sentence() -> None:
    module = ROOT / "core" / "texts" / "link.py"
    assert _sentences(module), "the scan finds nothing even where sentences are"


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(sub) for sub in ast.walk(node))
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_texts_import_neither_services_nor_venues_at_run_time() -> None:
    found = {
        path.name: sorted(
            name
            for name in _runtime_imports(path)
            if any(name == banned or name.startswith(f"{banned}.") for banned in NOT_FOR_TEXTS)
        )
        for path in _modules("core/texts")
    }
    assert {name: imports for name, imports in found.items() if imports} == {}


@pytest.mark.parametrize("reason", list(NotifyRefusal))
def test_every_notify_refusal_has_a_sentence(reason: NotifyRefusal) -> None:
    assert notify_texts.refused(reason, "Chan").startswith("❌ ")


def test_the_orders_screen_knows_the_conditional_kinds() -> None:
    # core/texts/trading.py names them by value so as not to import the exchange port.
    assert {OrderKind.STOP, OrderKind.TAKE_PROFIT} == trading_texts._CONDITIONAL_KINDS
