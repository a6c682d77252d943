"""Why a wallet-link step was refused: one exception class per reason, with a user message."""

from __future__ import annotations

from typing import ClassVar

from core.services.wallet_link.views import WalletView


class WalletLinkError(Exception):
    """A refused wallet-link step. ``str(exc)`` is a short message for the user.

    Attributes:
        code: A stable machine-readable reason, also the log field.
    """

    code: ClassVar[str] = "refused"
    default_message: ClassVar[str] = "The wallet could not be linked."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        """The user-facing message."""
        return str(self)


class InvalidInputError(WalletLinkError):
    """A malformed address, chain id, message or signature."""

    code = "invalid_input"


class LinkUnavailableError(WalletLinkError):
    """The token is unknown, used or expired. Deliberately one error for all three."""

    code = "link_unavailable"
    default_message = (
        "This link is no longer valid: a link works once, for 10 minutes. "
        "Send /link to the bot for a new one."
    )


class AlreadyLinkedError(WalletLinkError):
    """The user already has a linked wallet.

    Attributes:
        wallet: That wallet.
    """

    code = "already_linked"
    default_message = "You already have a linked wallet: send /unlink to the bot first."

    def __init__(self, wallet: WalletView) -> None:
        super().__init__()
        self.wallet = wallet


class AddressTakenError(WalletLinkError):
    """The address is linked to another Telegram account."""

    code = "address_taken"
    default_message = "This wallet is linked to another Telegram account."


class WrongDomainError(WalletLinkError):
    """The message was written for another site (phishing, or a misconfigured server)."""

    code = "wrong_domain"


class WrongUriError(WalletLinkError):
    """The message's URI is not this site's."""

    code = "wrong_uri"


class WrongChainError(WalletLinkError):
    """The wallet or the message is on another chain than the one links are made on."""

    code = "wrong_chain"


class NonceMismatchError(WalletLinkError):
    """The message's nonce is not the one this link holds now (replaced, reused, foreign)."""

    code = "nonce_mismatch"
    default_message = (
        "This message was not issued for this link, or a newer one replaced it. "
        "Reload the page and sign again."
    )


class MessageMismatchError(WalletLinkError):
    """A field we always write a certain way differs (statement, times, extra fields)."""

    code = "message_mismatch"
    default_message = (
        "This message is not the one this server issued. Reload the page and sign again."
    )


class MessageExpiredError(WalletLinkError):
    """The signed message is past its expiration time."""

    code = "message_expired"
    default_message = "This message has expired. Reload the page and sign again."


class InvalidSignatureError(WalletLinkError):
    """The signature is not the address's."""

    code = "invalid_signature"
    default_message = "The signature does not match the wallet address in the message."


class ContractWalletUnsupportedError(WalletLinkError):
    """The signer did not recover and no RPC is configured to ask a contract wallet."""

    code = "contract_wallet_needs_rpc"
    default_message = (
        "The signature does not match the address in the message. If this is a contract "
        "wallet (a Safe or another smart account), the server needs ETHEREUM_RPC_URL set "
        "to verify it: ask the operator, or link an ordinary wallet."
    )


class RpcUnavailableError(WalletLinkError):
    """The Ethereum RPC needed for a contract wallet failed or is on another chain."""

    code = "rpc_unavailable"
    default_message = (
        "Could not check this contract wallet with the server's Ethereum RPC. "
        "Try again in a minute."
    )
