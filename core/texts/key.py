"""/key: the dYdX API trading key conversation and its status screen."""

from __future__ import annotations

from datetime import UTC
from html import escape
from typing import TYPE_CHECKING

from core.domain.compliance import ComplianceStatus

if TYPE_CHECKING:  # the view types only: texts do not import the services at run time
    from core.services.credentials import CredentialView, Refusal

WHERE_IS_THE_KEY = (
    "In the dYdX app open <b>More → API Trading Keys</b>, create a key and copy its "
    "<b>Private Key</b> (64 characters 0-9 and a-f). Such a key can only place and cancel "
    "orders: it can never withdraw or transfer your funds."
)
CANCEL_HINT = "Send /cancel to stop."


def ask_owner_address(*, replacing: bool = False) -> str:
    """First step: the owner address."""
    intro = (
        "Let's replace your trading key. Your current key stays active until the new one "
        "passes every check."
        if replacing
        else "Let's connect your dYdX account with an <b>API trading key</b>."
    )
    return (
        f"{intro}\n\n"
        "<b>Step 1 of 2.</b> Send me the address of your dYdX account: it starts with "
        "<code>dydx1</code> and the dYdX app shows it under your wallet. Not the "
        f'"API Wallet Address" of the trading key.\n\n{CANCEL_HINT}'
    )


def ask_private_key(owner_address: str) -> str:
    """Second step: the trading key's private key."""
    return (
        f"Account: <code>{escape(owner_address)}</code>\n\n"
        f"<b>Step 2 of 2.</b> {WHERE_IS_THE_KEY}\n\n"
        "Paste the private key here. I delete your message as soon as I have read it, "
        "store the key encrypted, and never show it again.\n\n"
        "Never send your seed phrase (the 12 or 24 words): I do not need it and will refuse "
        f"it.\n\n{CANCEL_HINT}"
    )


def secret_deleted() -> str:
    """Said right after deleting a message that carried a secret."""
    return "🔒 I deleted your message so the secret in it does not stay in this chat."


def secret_not_deleted() -> str:
    """Said when Telegram refused the deletion."""
    return (
        "⚠️ I could not delete your message. Please delete it yourself (long-press it → "
        "Delete) so the secret in it does not stay in this chat."
    )


def checking() -> str:
    """Said while the node and the Indexer are asked."""
    return "Checking the key with dYdX…"


def text_only() -> str:
    """Answer to a photo, sticker or file during the conversation."""
    return f"Please send it as a text message. {CANCEL_HINT}"


def cancelled() -> str:
    """Answer to /cancel."""
    return "Cancelled; nothing was stored. Send /key to start again."


def conversation_expired() -> str:
    """The conversation's data is gone (restart or timeout)."""
    return "Sorry, I lost track of this conversation. Nothing was stored. Send /key to start again."


def retry_later() -> str:
    """The node or the Indexer could not be reached."""
    return (
        "I could not reach dYdX to check the key (the network or the dYdX node is not "
        "answering). Nothing was stored.\n\nPlease paste the key again in a minute, or send "
        "/cancel."
    )


def secret_outside_conversation() -> str:
    """A secret sent when no conversation expects one."""
    return (
        "That looked like a private key or a seed phrase, so I deleted it. Never send your "
        "seed phrase to anyone. To connect a trading key, send /key and follow the steps."
    )


_AGAIN_ADDRESS = f"Send the address of your dYdX account (dydx1…). {CANCEL_HINT}"
_AGAIN_KEY = f"Paste the private key of the API trading key again. {CANCEL_HINT}"
_START_OVER = "Nothing was stored. Send /key to start again."

_SEED_PHRASE = (
    "That looks like a <b>seed phrase</b>. I deleted it and did not store it.\n\n"
    "Never send your seed phrase to anyone, including me: whoever has it controls all your "
    "funds. If someone else may have seen it, move your funds to a new wallet.\n\n"
    "What I need instead is an API trading key. "
)


def refusal(reason: Refusal, owner_address: str | None = None) -> str:
    """Why an address or key was refused, and what to do instead."""
    account = f"<code>{escape(owner_address)}</code>" if owner_address else "this account"
    # Keyed by the values of ``Refusal`` (a StrEnum), which texts do not import.
    texts: dict[str, str] = {
        "MALFORMED_ADDRESS": (
            "That is not a dYdX account address: it should start with <code>dydx1</code> "
            "and be copied exactly (about 43 characters). " + _AGAIN_ADDRESS
        ),
        "KEY_INSTEAD_OF_ADDRESS": (
            "That looked like a private key, so I deleted it. First I need the address of "
            "your dYdX account; the key comes in the next step. " + _AGAIN_ADDRESS
        ),
        "MNEMONIC": _SEED_PHRASE + WHERE_IS_THE_KEY + "\n\n" + CANCEL_HINT,
        "MALFORMED_KEY": (
            "That is not a private key: I expect 64 characters 0-9 and a-f (optionally "
            "starting with 0x), exactly as dYdX shows it under API Trading Keys → Private "
            "Key. " + _AGAIN_KEY
        ),
        "INVALID_KEY": (
            "Those 64 characters are not a valid private key; part of it may be missing or "
            "mistyped. " + _AGAIN_KEY
        ),
        "MASTER_KEY": (
            f"This private key belongs to the account {account} itself: it is your "
            "<b>main key</b>, which can also withdraw your funds. I only accept a separate "
            "API trading key, so tv2dydx can never move your money.\n\n"
            'If you entered the trading key\'s "API Wallet Address" in step 1, start again '
            "with your account's own address. " + WHERE_IS_THE_KEY + "\n\n" + _START_OVER
        ),
        "NO_AUTHENTICATOR": (
            f"dYdX has no API trading key with this private key on {account}. Check that the "
            "account address is yours and that the key is listed under More → API Trading "
            "Keys for that account (the dYdX app asks you to confirm a new key; it exists "
            "only after that).\n\n" + _START_OVER
        ),
        "UNREADABLE_AUTHENTICATOR": (
            f"On {account} one of the permissions that mention this key is one I cannot "
            "read, so I cannot tell whether the key could also move funds. I refuse keys I "
            "cannot check.\n\nIn the dYdX app, under More → API Trading Keys, remove this "
            "key and create a new one (those are trade-only), then send it here.\n\n" + _START_OVER
        ),
        "TOO_BROAD": (
            f"On {account} this key can do more than place and cancel orders: it could also "
            "move funds (transfers or withdrawals). I only accept keys that can do nothing "
            "but trade, so tv2dydx stays non-custodial.\n\nCreate a new key in the dYdX app "
            "under More → API Trading Keys (those are trade-only) and remove the broad "
            "permission.\n\n" + _START_OVER
        ),
        "CANNOT_TRADE": (
            f"This key is authorised on {account}, but not to place orders, so I could not "
            "trade with it. Create a key under More → API Trading Keys in the dYdX app.\n\n"
            + _START_OVER
        ),
        "ACCOUNT_TAKEN": (
            "This dYdX account is already connected to another Telegram account on this bot. "
            "Remove it there first (/key → Remove key), then try again.\n\n" + _START_OVER
        ),
    }
    return texts[reason]


def compliance_notice(status: ComplianceStatus, owner_address: str) -> str:
    """The Telegram message telling a user their screening result changed (HTML-safe)."""
    head = f"dYdX's compliance screen now reports your account {owner_address} as {status.value}."
    if status is ComplianceStatus.BLOCKED:
        return (
            f"⚠️ {head}\nI will not place any order for it while this lasts. I check again "
            "every day and will tell you if it changes. If you think this is a mistake, "
            "contact dYdX support."
        )
    if not status.may_open:
        return (
            f"⚠️ {head}\nFrom now on I only place orders that reduce or close positions; "
            "alerts that would open or increase a position are refused."
        )
    if status is ComplianceStatus.FIRST_STRIKE:
        return (
            f"⚠️ {head}\nTrading continues for now, but dYdX may restrict the account to "
            "closing positions only. I check again every day."
        )
    return f"✅ {head}\nTrading is allowed again."


def _compliance_line(status: ComplianceStatus | None) -> str:
    if status is None:
        return "not screened yet"
    if status is ComplianceStatus.BLOCKED:
        return "⛔ BLOCKED: no orders are placed"
    if not status.may_open:
        return f"⚠️ {status.value}: only orders that reduce or close positions"
    if status is ComplianceStatus.FIRST_STRIKE:
        return "⚠️ FIRST_STRIKE: trading allowed, dYdX may restrict the account"
    return "✅ compliant"


def _compliance_warning(status: ComplianceStatus | None) -> str:
    if status is ComplianceStatus.BLOCKED:
        return (
            "\n\n⛔ dYdX's compliance screen reports this account as <b>BLOCKED</b>. I will "
            "not place any order for it while this lasts. I check again every day and will "
            "tell you if it changes."
        )
    if status is not None and not status.may_open:
        return (
            f"\n\n⚠️ dYdX's compliance screen reports this account as <b>{status.value}</b>: "
            "I will only place orders that reduce or close positions."
        )
    return ""


def status(view: CredentialView) -> str:
    """The status screen of the active key (never the key itself)."""
    added = view.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<b>Your dYdX trading key</b>\n\n"
        f"Account: <code>{escape(view.owner_address)}</code>\n"
        f"Subaccount: {view.subaccount_number}\n"
        f"Key address: <code>{escape(view.key_address)}</code>\n"
        f"Authenticator: #{view.authenticator_id}\n"
        f"Added: {added}\n"
        f"Compliance: {_compliance_line(view.compliance_status)}\n\n"
        "The key can only place and cancel orders. Replace it or remove it below."
    )


def key_added(view: CredentialView) -> str:
    """Confirmation after a key was stored."""
    return (
        "✅ <b>Trading key connected.</b>\n\n"
        f"Account: <code>{escape(view.owner_address)}</code> (subaccount "
        f"{view.subaccount_number})\n"
        f"Key address: <code>{escape(view.key_address)}</code>\n"
        f"Authenticator: #{view.authenticator_id}\n\n"
        "It is stored encrypted and can only place and cancel orders."
        f"{_compliance_warning(view.compliance_status)}\n\n"
        "Next step: /help lists what to set up next. /key shows this key at any time."
    )


def confirm_remove(view: CredentialView) -> str:
    """Asked before removing the key."""
    return (
        f"Remove the trading key for <code>{escape(view.owner_address)}</code>? I will stop "
        "placing orders for this account."
    )


def removed() -> str:
    """After removal."""
    return (
        "Removed: I no longer hold a key for your account.\n\nTo revoke the key itself, delete "
        "it in the dYdX app under More → API Trading Keys. Send /key to connect a key again."
    )


def kept() -> str:
    """The removal was cancelled."""
    return "Kept: your trading key stays active. Send /key to see it."


def nothing_to_remove() -> str:
    """Remove pressed when there is no key any more."""
    return "There is no trading key to remove. Send /key to connect one."


REPLACE_BUTTON = "🔁 Replace key"
REMOVE_BUTTON = "🗑 Remove key"
CONFIRM_REMOVE_BUTTON = "Yes, remove it"
KEEP_BUTTON = "No, keep it"


# What changed on dYdX, and what to do, by ``KeyProblem`` value (texts do not import it).
_SUSPENDED: dict[str, tuple[str, str]] = {
    "NO_AUTHENTICATOR": (
        "was removed on dYdX (its permission no longer exists)",
        "create a new key in the dYdX app under More → API Trading Keys",
    ),
    "TOO_BROAD": (
        "now also allows moving funds (transfers or withdrawals), not only trading",
        "remove that wider permission in the dYdX app, or remove the key and create a new "
        "one under More → API Trading Keys (those are trade-only)",
    ),
    "UNREADABLE_AUTHENTICATOR": (
        "now has a permission I cannot read, so I cannot tell whether it could move funds",
        "remove the key in the dYdX app and create a new one under More → API Trading Keys",
    ),
    "CANNOT_TRADE": (
        "can no longer place orders",
        "create a new key in the dYdX app under More → API Trading Keys",
    ),
}


def key_suspended(problem: str, owner_address: str) -> str:
    """The worker's re-check found the key's permission changed: trading stopped."""
    changed, todo = _SUSPENDED.get(problem, _SUSPENDED["TOO_BROAD"])
    return (
        f"⛔ <b>Trading stopped.</b> Your dYdX API trading key for "
        f"<code>{escape(owner_address)}</code> {changed}.\n"
        "I removed the key from tv2dydx and paused trading: alerts are recorded, not "
        "executed. Take-profit and stop-loss orders already on dYdX were left as they are; "
        "check them in the dYdX app or with /positions.\n\n"
        f"To trade again: {todo}, send it with /key, then /resume."
    )
