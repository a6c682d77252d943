"""Orders a caller in this process follows to their end, and the stream's news of them.

The job that placed an order waits on its outcome (:meth:`OrderSettler.settle`); the
position monitor of the same process, which streams the subaccount from the Indexer, leaves
such an order's events to the job (it records them itself) and tells it when to look: the
Indexer sends the stream after processing the block, so the look finds the order's end at
once instead of polling for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from core.exchange.stream import SubaccountEvent

#: While this process streams a followed order's subaccount, the longest wait between
#: looks at the Indexer: the stream says when to look, this covers a lost event.
STREAMED_LOOK_AFTER = 1.0

#: (owner address, subaccount number, client id) of one order.
OrderKey = tuple[str, int, int]
#: Most events kept per followed order (a resting order filling in many pieces keeps only
#: the latest; its follower then asks the Indexer).
MAX_NEWS = 256


def _never(_owner_address: str, _subaccount_number: int) -> bool:
    return False


class FollowedOrders:
    """The orders followed in this process, with a wake-up per order."""

    def __init__(self) -> None:
        self._count: Counter[OrderKey] = Counter()
        self._wakeups: dict[OrderKey, asyncio.Event] = {}
        self._news: dict[OrderKey, list[SubaccountEvent]] = {}
        self._streamed: Callable[[str, int], bool] = _never

    @contextlib.contextmanager
    def following(
        self, owner_address: str, subaccount_number: int, client_id: int
    ) -> Iterator[None]:
        """Mark an order as followed to its end by the caller (see :meth:`is_followed`)."""
        key = (owner_address, subaccount_number, client_id)
        self._count[key] += 1
        self._wakeups.setdefault(key, asyncio.Event())
        try:
            yield
        finally:
            self._count[key] -= 1
            if not self._count[key]:
                del self._count[key]
                self._wakeups.pop(key, None)
                self._news.pop(key, None)

    def is_followed(self, owner_address: str, subaccount_number: int, client_id: int) -> bool:
        """Whether a caller in this process is waiting on this order's outcome (a job that
        placed it): it records the order's fills, position and protection step itself."""
        return (owner_address, subaccount_number, client_id) in self._count

    def wake(
        self,
        owner_address: str,
        subaccount_number: int,
        client_id: int,
        events: Sequence[SubaccountEvent] = (),
    ) -> None:
        """The venue's stream told news of a followed order: its follower looks now (the
        Indexer, which sends the stream, has the block) instead of at its next poll.

        Args:
            events: The stream's batch that named the order (its fills, the order's update
                and the positions after them): the follower may record the order's end from
                them without asking the Indexer (see :meth:`news`).
        """
        key = (owner_address, subaccount_number, client_id)
        event = self._wakeups.get(key)
        if event is not None:
            if events:
                news = self._news.setdefault(key, [])
                news.extend(events)
                del news[:-MAX_NEWS]
            event.set()

    def news(
        self, owner_address: str, subaccount_number: int, client_id: int
    ) -> list[SubaccountEvent]:
        """What the stream told while the order was followed, oldest first."""
        return list(self._news.get((owner_address, subaccount_number, client_id), ()))

    def use_stream(self, streamed: Callable[[str, int], bool]) -> None:
        """Tell which subaccounts this process's stream watches: their followers
        wait for :meth:`wake` (up to :data:`STREAMED_LOOK_AFTER`) instead of polling the
        Indexer every ``poll_interval``."""
        self._streamed = streamed

    async def next_look(
        self, owner_address: str, subaccount_number: int, client_id: int, *, within: float
    ) -> None:
        """Wait for the stream's news of a followed order, or ``within`` seconds when this
        process does not stream its subaccount (:data:`STREAMED_LOOK_AFTER` when it does,
        in case an event was lost)."""
        event = self._wakeups.get((owner_address, subaccount_number, client_id))
        if event is None:
            await asyncio.sleep(within)
            return
        if self._streamed(owner_address, subaccount_number):
            within = max(within, STREAMED_LOOK_AFTER)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), within)
        event.clear()
