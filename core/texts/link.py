"""/link and /unlink: the wallet link by a signed EIP-4361 message."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the view type only: texts do not import the services at run time
    from core.services.wallet_link.views import WalletView

OPEN_BUTTON = "Open the wallet-link page"
UNLINK_BUTTON = "Unlink"
KEEP_BUTTON = "Keep it"


def _minutes(ttl: timedelta) -> int:
    return int(ttl.total_seconds() // 60)


def _since(wallet: WalletView) -> str:
    return wallet.linked_at.strftime("%Y-%m-%d %H:%M UTC")


def link_issued(ttl: timedelta) -> str:
    """The /link answer above the button that opens the page.

    Args:
        ttl: How long a link works.
    """
    return (
        "<b>Link your wallet</b>\n\n"
        "The page asks your wallet to sign a message that names this Telegram account. "
        "Signing is free: it sends no transaction and gives no access to your funds.\n\n"
        f"The link is valid for {_minutes(ttl)} minutes and works once. It is yours alone: "
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


def linked(wallet: WalletView) -> str:
    """The bot's confirmation in the chat once the page linked the wallet (HTML)."""
    return (
        f"✅ Wallet <code>{wallet.address}</code> is now linked to this Telegram account.\n\n"
        "If you did not do this, send /unlink at once.\n"
        "Next step: add your dYdX API trading key with /key."
    )


def signing_statement(username: str | None, telegram_id: int) -> str:
    """The EIP-4361 statement the wallet shows when signing, naming the Telegram account.

    Only characters the EIP-4361 statement grammar allows: ``username`` is ``[A-Za-z0-9_]``
    (the caller drops any other).
    """
    who = f"@{username} (id {telegram_id})" if username else f"id {telegram_id}"
    return (
        f"Link this wallet to Telegram user {who} on tv2dydx. "
        "This signature costs nothing and grants no access to funds."
    )


# Why the page refused a step (``WalletLinkError`` messages, shown on the wallet-link page).

REFUSED = "The wallet could not be linked."
LINK_UNAVAILABLE = (
    "This link is no longer valid: a link works once, for 10 minutes. "
    "Send /link to the bot for a new one."
)
HAS_WALLET = "You already have a linked wallet: send /unlink to the bot first."
ADDRESS_TAKEN = "This wallet is linked to another Telegram account."
NONCE_MISMATCH = (
    "This message was not issued for this link, or a newer one replaced it. "
    "Reload the page and sign again."
)
MESSAGE_MISMATCH = "This message is not the one this server issued. Reload the page and sign again."
MESSAGE_EXPIRED = "This message has expired. Reload the page and sign again."
INVALID_SIGNATURE = "The signature does not match the wallet address in the message."
CONTRACT_WALLET_NEEDS_RPC = (
    "The signature does not match the address in the message. If this is a contract "
    "wallet (a Safe or another smart account), the server needs ETHEREUM_RPC_URL set "
    "to verify it: ask the operator, or link an ordinary wallet."
)
RPC_UNAVAILABLE = (
    "Could not check this contract wallet with the server's Ethereum RPC. Try again in a minute."
)
RPC_WRONG_CHAIN = (
    "The server's Ethereum RPC is on another chain, so contract wallets cannot be "
    "checked. Ask the operator to fix ETHEREUM_RPC_URL, or link an ordinary wallet."
)
NOT_A_CHAIN_ID = "That is not a chain id."
NOT_TEXT = "Send the message and the signature as text."
MESSAGE_TOO_LONG = "The message is too long."
NOT_AN_ADDRESS = "That is not an Ethereum address (0x and 40 hex digits)."
BAD_CHECKSUM = "This address has a wrong checksum (EIP-55); copy it again."
NOT_A_SIWE_MESSAGE = "This is not a valid sign-in message (EIP-4361)."
NOT_A_SIGNATURE = "That is not a signature (0x and hex digits)."
INIT_DATA_INVALID = (
    "Telegram's signature on this page is not valid or too old. Close it and open it again "
    "from the bot's button."
)
OTHER_TELEGRAM_USER = (
    "This link belongs to another Telegram account. Send /link in your own chat with the bot."
)


def wallet_on_wrong_chain(chain_id: int, chain_name: str, expected_id: int) -> str:
    """The wallet is on another chain than links are made on."""
    return (
        f"Your wallet is on chain id {chain_id}. Switch it to {chain_name} "
        f"(chain id {expected_id}) and try again."
    )


def wrong_domain(named: str, domain: str) -> str:
    """The message was written for another site."""
    return (
        f"This message was made for {named}, not for {domain}. "
        "Never sign a message for another site."
    )


def wrong_uri(uri: str, expected: str) -> str:
    """The message names another URI."""
    return f"This message names {uri}, not {expected}. Never sign a message for another site."


def message_on_wrong_chain(chain_id: int, chain_name: str, expected_id: int) -> str:
    """The message names another chain than links are made on."""
    return (
        f"This message is for chain id {chain_id}; this server links wallets "
        f"on {chain_name} (chain id {expected_id})."
    )
