"""The venue-neutral errors of the exchange port. Messages never carry secrets or user input.

Callers decide by type (freqtrade-style): retry a :class:`RetryableExchangeError`, tell the
trader the ``reason`` of a :class:`PermanentExchangeError`, reconcile after an
:class:`UnknownOutcomeError`. A venue's own diagnostic codes ride along as opaque attributes
for logs and records; each venue maps its answers onto this tree at its boundary.
"""

from __future__ import annotations

from core.texts import exchange as texts


class ExchangeError(Exception):
    """The exchange could not answer a question.

    Attributes:
        retryable: Whether asking again later may succeed.
    """

    retryable: bool = False


class RetryableExchangeError(ExchangeError):
    """The exchange refused for a transient reason: building, signing and sending again later
    may succeed.

    Attributes:
        reason: Plain words for the trader.
        code: The venue's diagnostic code (0 when there is none); opaque outside the venue.
        codespace: The venue's diagnostic namespace of ``code``, empty if none; opaque.
        raw_log: The venue's raw answer, for the logs only (never shown verbatim, may name
            addresses).
    """

    retryable = True

    def __init__(
        self,
        reason: str = "",
        *,
        code: int = 0,
        codespace: str = "",
        raw_log: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.codespace = codespace
        self.raw_log = raw_log


class ExchangeUnavailableError(RetryableExchangeError):
    """The venue (a node, an API) is unreachable, timed out or answered with a server error."""


class StaleSignatureError(RetryableExchangeError):
    """The signature's replay protection (a timestamp nonce) is out of date or already used:
    these signed bytes can never land again.

    Sending the same bytes again is useless; the order must be signed anew. Whether an
    earlier send of the same bytes landed is not said: ask the venue for the transaction's
    result (:meth:`~core.exchange.port.Exchange.tx_result`) before signing again. A caller
    that only knows the parent class keeps treating it as "nothing is known to have landed".
    """


class PermanentExchangeError(ExchangeError):
    """The exchange refused the order for good: sending it again cannot succeed until the trader
    changes something (``reason`` says what).

    Attributes:
        reason: Plain words telling the trader what to change.
        code: The venue's diagnostic code; opaque outside the venue.
        codespace: The venue's diagnostic namespace of ``code``; opaque.
        raw_log: The venue's raw answer, for the logs only.
    """

    retryable = False

    def __init__(
        self, reason: str, *, code: int = 0, codespace: str = "", raw_log: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.codespace = codespace
        self.raw_log = raw_log


class OrderAlreadyKnownError(PermanentExchangeError):
    """The venue has, or had, an order with this client id (open, filled, cancelled or
    removed): sending it again is refused, but the order was placed after all."""


class SigningUnavailableError(ExchangeError):
    """This process holds no API trading keys (only the worker does): it can read the venue
    but never sign. Reaching this is a wiring bug, never a trader's doing."""

    retryable = False


class UnknownOutcomeError(ExchangeError):
    """The transaction was (or may have been) sent, but no answer came back in time.

    The order may or may not exist: do not place it again blindly. Reconcile from the venue
    (or send the identical signed bytes again, which the venue deduplicates).

    Attributes:
        tx_hash: Hash of the sent transaction (upper-case hex), empty if not known.
    """

    retryable = False

    def __init__(self, reason: str = "", *, tx_hash: str = "") -> None:
        super().__init__(reason or texts.NO_ANSWER)
        self.tx_hash = tx_hash


class AlreadyPlacedError(ExchangeError):
    """Not a failure: the identical signed bytes are already pending at the venue.

    An earlier send of the same signed bytes got through; treat the order as submitted and
    reconcile its outcome, never place it again.

    Attributes:
        code: The venue's diagnostic code; opaque.
        codespace: The venue's diagnostic namespace of ``code``; opaque.
        raw_log: The venue's raw answer.
    """

    retryable = False

    def __init__(self, *, code: int = 0, codespace: str = "", raw_log: str = "") -> None:
        super().__init__(texts.ALREADY_BROADCAST)
        self.code = code
        self.codespace = codespace
        self.raw_log = raw_log
