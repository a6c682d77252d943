"""Transaction results and the chain's error codes (``x/clob/types/errors.go``)."""

from __future__ import annotations

from dataclasses import dataclass

from doubles.dydx.state.constants import MAX_SUBACCOUNT_NUMBER

# --------------------------------------------------------------------------------------------
# Results and errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TxResult:
    """Outcome of a message as CheckTx would report it.

    Attributes:
        code: 0 on success, otherwise the registered error code of ``codespace``.
        codespace: Module of the error (``"clob"``, ``"subaccounts"``…), empty on success.
        log: The raw log the chain would return.
    """

    code: int = 0
    codespace: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        """True when the message was accepted."""
        return self.code == 0


OK = TxResult()


@dataclass(frozen=True)
class ChainError:
    """A registered cosmos-sdk error (``errorsmod.Register(codespace, code, description)``)."""

    codespace: str
    code: int
    description: str

    def result(self, detail: str = "") -> TxResult:
        """Build the TxResult of this error, wrapped with ``detail`` like ``errorsmod.Wrapf``."""
        text = f"{detail}: {self.description}" if detail else self.description
        return TxResult(self.code, self.codespace, text)


ERR_INVALID_ORDER_SIDE = ChainError("clob", 3, "Invalid order side")
ERR_INVALID_ORDER_QUANTUMS = ChainError("clob", 4, "Invalid order quantums")
ERR_INVALID_ORDER_GOOD_TIL_BLOCK = ChainError("clob", 5, "Invalid order goodTilBlock")
ERR_INVALID_ORDER_SUBTICKS = ChainError("clob", 6, "Invalid order subticks")
ERR_ORDER_IS_CANCELED = ChainError("clob", 7, "Attempt to place an order that is already canceled")
ERR_INVALID_CLOB = ChainError("clob", 8, "ClobPair ID does not reference a valid CLOB")
ERR_MEMCLOB_CANCEL_ALREADY_EXISTS = ChainError(
    "clob",
    9,
    "A cancel already exists in the memclob for this order with a greater than or equal "
    "GoodTilBlock",
)
ERR_HEIGHT_EXCEEDS_GOOD_TIL_BLOCK = ChainError(
    "clob", 10, "The next block height is greater than the GoodTilBlock of the message"
)
ERR_GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW = ChainError(
    "clob",
    11,
    "The GoodTilBlock of the message is further than ShortBlockWindow blocks into the future",
)
ERR_INVALID_PLACE_ORDER = ChainError("clob", 12, "MsgPlaceOrder is invalid")
ERR_INVALID_REPLACEMENT = ChainError("clob", 20, "Replacing an existing order failed")
ERR_ORDER_FULLY_FILLED = ChainError("clob", 24, "Order is fully filled")
ERR_INVALID_BATCH_CANCEL = ChainError("clob", 45, "Invalid batch cancel message")
ERR_BATCH_CANCEL_FAILED = ChainError("clob", 46, "Batch cancel has failed")
ERR_REDUCE_ONLY_WOULD_INCREASE_POSITION_SIZE = ChainError(
    "clob", 2001, "Reduce-only orders cannot increase the position size"
)
ERR_IMMEDIATE_EXECUTION_ORDER_ALREADY_FILLED = ChainError(
    "clob", 2004, "IOC order is already filled, remaining size is cancelled."
)
ERR_INVALID_ORDER_FLAG = ChainError("clob", 3000, "Invalid order flags")
ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME = ChainError(
    "clob", 3001, "Invalid order goodTilBlockTime"
)
ERR_LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION = ChainError(
    "clob", 3002, "Stateful orders cannot require immediate execution"
)
ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME = ChainError(
    "clob", 3003, "The block time is greater than the GoodTilBlockTime of the message"
)
ERR_GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW = ChainError(
    "clob",
    3004,
    "The GoodTilBlockTime of the message is further than StatefulOrderTimeWindow into the future",
)
ERR_STATEFUL_ORDER_ALREADY_EXISTS = ChainError(
    "clob", 3005, "Existing stateful order has higher-or-equal priority than the new one"
)
ERR_STATEFUL_ORDER_DOES_NOT_EXIST = ChainError("clob", 3006, "Stateful order does not exist")
ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED = ChainError(
    "clob", 3007, "Stateful order collateralization check failed"
)
ERR_STATEFUL_ORDER_PREVIOUSLY_CANCELLED = ChainError(
    "clob", 3008, "Stateful order was previously cancelled and therefore cannot be placed"
)
ERR_STATEFUL_ORDER_PREVIOUSLY_REMOVED = ChainError(
    "clob", 3009, "Stateful order was previously removed and therefore cannot be placed"
)
ERR_BLOCK_RATE_LIMIT_EXCEEDED = ChainError("clob", 5001, "Block rate limit exceeded")
ERR_INVALID_CONDITION_TYPE = ChainError("clob", 6000, "Conditional type is invalid")
ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS = ChainError(
    "clob", 6001, "Conditional order trigger subticks is invalid"
)
ERR_REDUCE_ONLY_DISABLED = ChainError(
    "clob", 9003, "Reduce-only is currently disabled for non-IOC orders"
)
ERR_FAILED_TO_UPDATE_SUBACCOUNTS = ChainError(
    "subaccounts", 102, "failed to apply subaccount updates"
)
ERR_INVALID_SUBACCOUNT_ID_NUMBER = ChainError(
    "subaccounts", 200, f"subaccount id number cannot exceed {MAX_SUBACCOUNT_NUMBER}"
)
ERR_INVALID_SUBACCOUNT_ID_OWNER = ChainError(
    "subaccounts", 201, "subaccount id owner is an invalid address"
)
