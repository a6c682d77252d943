"""What the monitor calls when a watched subaccount changes (and when oracle prices move)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.exchange.stream import OraclePrice, SubaccountEvent, SubaccountRef


class SubaccountListener(Protocol):
    """Told about changes of the subaccounts this process watches.

    Calls for one subaccount never overlap; events that arrive meanwhile are delivered in the
    next call. A call that raises is logged and the next catch-up covers what it missed, so
    implementations must be idempotent.
    """

    async def subaccount_changed(
        self, ref: SubaccountRef, events: Sequence[SubaccountEvent], *, catch_up: bool
    ) -> None:
        """The subaccount changed.

        Args:
            ref: The subaccount.
            events: What the stream (or a REST snapshot) said, oldest first.
            catch_up: The events include a REST snapshot taken after the subscription was
                down, (re)established or last checked a while ago: anything may have changed
                meanwhile, so look at everything the subaccount has open, not only what the
                events name.
        """
        ...


class OracleListener(Protocol):
    """Told about oracle prices (trailing stops and breakeven need them)."""

    async def oracle_changed(self, prices: Sequence[OraclePrice]) -> None:
        """The latest oracle prices; older updates of the same market may have been skipped."""
        ...
