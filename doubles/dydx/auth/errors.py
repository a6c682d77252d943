"""ABCI errors as the chain renders them (``cosmossdk.io/errors``)."""

from __future__ import annotations

# --- errors -----------------------------------------------------------------------------------

SDK = "sdk"
ACCOUNTPLUS = "accountplus"

# (codespace, code) -> registered description, as in cosmos-sdk types/errors and
# x/accountplus/types/errors.go.
_DESCRIPTIONS: dict[tuple[str, int], str] = {
    (SDK, 2): "tx parse error",
    (SDK, 4): "unauthorized",
    (SDK, 6): "unknown request",
    (SDK, 7): "invalid address",
    (SDK, 8): "invalid pubkey",
    (SDK, 9): "unknown address",
    (SDK, 15): "no signatures supplied",
    (SDK, 18): "invalid request",
    (SDK, 19): "tx already in mempool",
    (SDK, 32): "incorrect account sequence",
    (ACCOUNTPLUS, 1): "Authenticator is not found",
    (ACCOUNTPLUS, 2): "Invalid account address",
    (ACCOUNTPLUS, 3): "Authenticator data exceeds maximum length",
    (ACCOUNTPLUS, 5): "Error initializing authenticator",
    (ACCOUNTPLUS, 100): "Signature verification failed",
    (ACCOUNTPLUS, 101): "Message type verification failed",
    (ACCOUNTPLUS, 102): "Clob pair id verification failed",
    (ACCOUNTPLUS, 103): "Subaccount verification failed",
    (ACCOUNTPLUS, 104): "AllOf verification failed",
    (ACCOUNTPLUS, 105): "AnyOf verification failed",
}


class ChainError(Exception):
    """An ABCI error as the chain reports it.

    Attributes:
        code: ABCI code of the root cause.
        codespace: Module codespace of the root cause (``sdk``, ``accountplus``, ``clob``...).
        log: The full ``raw_log`` text.
    """

    def __init__(self, codespace: str, code: int, log: str) -> None:
        super().__init__(log)
        self.codespace = codespace
        self.code = code
        self.log = log

    @classmethod
    def registered(cls, codespace: str, code: int, message: str | None = None) -> ChainError:
        """Build ``errorsmod.Wrap(<registered error>, message)``.

        Args:
            codespace: Codespace of the registered error.
            code: Its code.
            message: Optional wrapping text; the log is ``"<message>: <description>"``.

        Returns:
            The error.
        """
        description = _DESCRIPTIONS[(codespace, code)]
        return cls(codespace, code, f"{message}: {description}" if message else description)

    @classmethod
    def internal(cls) -> ChainError:
        """An error with no registered cause, which the SDK redacts to ``internal``."""
        return cls("undefined", 1, "internal")

    def wrap(self, message: str) -> ChainError:
        """Return this error wrapped with more context, keeping its code and codespace."""
        if self.codespace == "undefined":
            return self  # Redacted errors stay "internal" however they are wrapped.
        return ChainError(self.codespace, self.code, f"{message}: {self.log}")

    def __repr__(self) -> str:
        return f"ChainError({self.codespace!r}, {self.code}, {self.log!r})"


class _GoError(Exception):
    """A plain Go ``error`` (not registered): renders as text, redacts to ``internal``."""
