"""/start: welcome and the jurisdiction declaration."""

from __future__ import annotations

from html import escape

from core.compliance import Declaration


def welcome(first_name: str | None, *, returning: bool) -> str:
    """The greeting: what tv2dydx does and, above all, what it cannot do."""
    name = escape(first_name or "trader")
    hello = f"Welcome back, {name}." if returning else f"Hi {name}, welcome to <b>tv2dydx</b>."
    return (
        f"{hello}\n\n"
        "I turn your TradingView alerts into orders on <b>dYdX v4</b> and report every "
        "fill, P&amp;L and error right here.\n\n"
        "<b>Non-custodial:</b> I work with a dYdX <i>API trading key</i> that can only place "
        "and cancel orders. I can never withdraw or transfer your funds, and I will never "
        "ask for your seed phrase."
    )


def declaration(decl: Declaration, *, renewed: bool) -> str:
    """The self-declaration to accept."""
    intro = (
        "The declaration has changed since you last accepted it. Please read it again."
        if renewed
        else "Before we start, a short declaration."
    )
    return f"{intro}\n\n{escape(decl.text)}\n\n<i>Version {escape(decl.version)}</i>"


def declaration_accepted() -> str:
    """Confirmation after acceptance, with the next step."""
    return "Thank you, noted. Next step: /help shows what I can do."


def declaration_required() -> str:
    """Answer to anything before the declaration is accepted."""
    return "Please accept the declaration first: send /start."


def declaration_stale() -> str:
    """Answer to an old accept button."""
    return "That declaration is out of date. Send /start to see the current one."


ACCEPT_BUTTON = "I confirm"
ALREADY_ACCEPTED = "Already accepted."
