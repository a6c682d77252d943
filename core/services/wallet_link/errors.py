"""Why a wallet-link step was refused: one exception class per reason, with a user message."""

from __future__ import annotations

from typing import ClassVar

from core.services.wallet_link.views import WalletView
from core.texts import link as texts


class WalletLinkError(Exception):
    """A refused wallet-link step. ``str(exc)`` is a short message for the user.

    Attributes:
        code: A stable machine-readable reason, also the log field.
    """

    code: ClassVar[str] = "refused"
    default_message: ClassVar[str] = texts.REFUSED

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
    default_message = texts.LINK_UNAVAILABLE


class AlreadyLinkedError(WalletLinkError):
    """The user already has a linked wallet.

    Attributes:
        wallet: That wallet.
    """

    code = "already_linked"
    default_message = texts.HAS_WALLET

    def __init__(self, wallet: WalletView) -> None:
        super().__init__()
        self.wallet = wallet


class AddressTakenError(WalletLinkError):
    """The address is linked to another Telegram account."""

    code = "address_taken"
    default_message = texts.ADDRESS_TAKEN


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
    default_message = texts.NONCE_MISMATCH


class MessageMismatchError(WalletLinkError):
    """A field we always write a certain way differs (statement, times, extra fields)."""

    code = "message_mismatch"
    default_message = texts.MESSAGE_MISMATCH


class MessageExpiredError(WalletLinkError):
    """The signed message is past its expiration time."""

    code = "message_expired"
    default_message = texts.MESSAGE_EXPIRED


class InvalidSignatureError(WalletLinkError):
    """The signature is not the address's."""

    code = "invalid_signature"
    default_message = texts.INVALID_SIGNATURE


class ContractWalletUnsupportedError(WalletLinkError):
    """The signer did not recover and no RPC is configured to ask a contract wallet."""

    code = "contract_wallet_needs_rpc"
    default_message = texts.CONTRACT_WALLET_NEEDS_RPC


class RpcUnavailableError(WalletLinkError):
    """The Ethereum RPC needed for a contract wallet failed or is on another chain."""

    code = "rpc_unavailable"
    default_message = texts.RPC_UNAVAILABLE


class InitDataInvalidError(WalletLinkError):
    """Opened as a Mini App, but Telegram's ``initData`` is forged, malformed or too old."""

    code = "init_data_invalid"
    default_message = texts.INIT_DATA_INVALID


class OtherTelegramUserError(WalletLinkError):
    """Opened as a Mini App by another Telegram account than the link's."""

    code = "other_telegram_user"
    default_message = texts.OTHER_TELEGRAM_USER
