"""/link and /unlink: the wallet link by a signed EIP-4361 message."""

from __future__ import annotations

from core.services.wallet_link.service import LINK_TTL
from core.services.wallet_link.views import WalletView

OPEN_BUTTON = "Open the wallet-link page"
UNLINK_BUTTON = "Unlink"
KEEP_BUTTON = "Keep it"


def _minutes() -> int:
    return int(LINK_TTL.total_seconds() // 60)


def _since(wallet: WalletView) -> str:
    return wallet.linked_at.strftime("%Y-%m-%d %H:%M UTC")


def link_issued() -> str:
    """The /link answer above the button that opens the page."""
    return (
        "<b>Link your wallet</b>\n\n"
        "The page asks your wallet to sign a message that names this Telegram account. "
        "Signing is free: it sends no transaction and gives no access to your funds.\n\n"
        f"The link is valid for {_minutes()} minutes and works once. It is yours alone: "
        "never forward it.\n\n"
        "Next step: tap the button below. If no wallet shows up, open the link in your "
        "wallet app's browser. I will confirm here once it is linked."
    )


def already_linked(wallet: WalletView) -> str:
    """The link status when a wallet is linked."""
    return (
        f"Your linked wallet: <code>{wallet.address}</code> (since {_since(wallet)}).\n\n"
        "Next step: to link another wallet, send /unlink first."
    )


def confirm_unlink(wallet: WalletView) -> str:
    """The question before unlinking."""
    return (
        f"Unlink wallet <code>{wallet.address}</code>? Only the link is removed: your API "
        "trading key and webhook stay as they are.\n\n"
        "Next step: choose below."
    )


def nothing_to_unlink() -> str:
    """/unlink without a linked wallet."""
    return "No wallet is linked to your account.\n\nNext step: send /link to link one."


def unlinked(wallet: WalletView) -> str:
    """After unlinking."""
    return (
        f"Wallet <code>{wallet.address}</code> is no longer linked.\n\n"
        "Next step: send /link whenever you want to link a wallet again."
    )


def unlink_stale() -> str:
    """A confirmation pressed after the wallet changed."""
    return (
        "Nothing was unlinked: that wallet is no longer the linked one.\n\n"
        "Next step: send /link to see your wallet status."
    )


def unlink_cancelled() -> str:
    """The user kept the wallet."""
    return "OK, your wallet stays linked.\n\nNext step: /help shows what else you can do."
