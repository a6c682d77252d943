"""/start: welcome and the jurisdiction declaration."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from core.domain.compliance import Declaration

if TYPE_CHECKING:  # the view types only: texts do not import the services at run time
    from core.services.users import SetupStatus


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
    return (
        "Thank you, noted.\n\nNext step: /link your wallet (one signature in your wallet, "
        "no transaction, no cost)."
    )


def setup_status(status: SetupStatus) -> str:
    """The onboarding checklist with the one next step."""

    def mark(done: bool) -> str:
        return "✅" if done else "⬜️"

    wallet = f" <code>{escape(status.wallet_address)}</code>" if status.wallet_address else ""
    owner = f" <code>{escape(status.owner_address)}</code>" if status.owner_address else ""
    lines = [
        "<b>Set-up</b>",
        f"{mark(status.declaration)} Declaration accepted",
        f"{mark(status.wallet_address is not None)} Wallet linked{wallet}",
        f"{mark(status.owner_address is not None)} dYdX API trading key{owner}",
    ]
    if status.wallet_address is None:
        step = "Next step: /link your wallet."
    elif status.owner_address is None:
        step = (
            "Next step: /key to add your dYdX API trading key (it can only trade, never withdraw)."
        )
    else:
        step = "All set. /help shows every command."
    return "\n".join([*lines, "", step])


def declaration_required() -> str:
    """Answer to anything before the declaration is accepted."""
    return "Please accept the declaration first: send /start."


def declaration_stale() -> str:
    """Answer to an old accept button."""
    return "That declaration is out of date. Send /start to see the current one."


ACCEPT_BUTTON = "I confirm"
ALREADY_ACCEPTED = "Already accepted."
