"""The repositories' transition functions: the one way an alert's or an order's state moves."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Alert, Order, User
from core.db.repositories.alerts import AlertRepository
from core.db.uow import UnitOfWork
from core.domain.states import (
    UNFILLED_ORDER_STATES,
    AlertState,
    IllegalTransitionError,
    OrderPurpose,
    OrderSide,
    OrderState,
)

Maker = async_sessionmaker[AsyncSession]


async def _order(uow: UnitOfWork, state: OrderState) -> Order:
    user = User(telegram_id=7)
    uow.session.add(user)
    await uow.session.flush()
    values: dict[str, Any] = {
        "user_id": user.id,
        "purpose": OrderPurpose.ENTRY,
        "market": "BTC-USD",
        "owner_address": "dydx1owner",
        "subaccount_number": 0,
        "client_id": 1,
        "order_flags": 0,
        "side": OrderSide.BUY,
        "order_type": "MARKET",
        "size": Decimal("0.01"),
        "time_in_force": "IOC",
        "state": state,
    }
    order = Order(**values)
    uow.session.add(order)
    await uow.session.flush()
    return order


async def _state(uow: UnitOfWork, order_id: int) -> OrderState:
    order = await uow.orders.get(order_id)
    assert order is not None
    await uow.session.refresh(order)
    return order.state


async def test_an_optimistic_move_only_goes_forward(sessionmaker: Maker) -> None:
    async with UnitOfWork(sessionmaker) as uow:
        order = await _order(uow, OrderState.SUBMITTING)
        assert await uow.orders.transition(order.id, OrderState.SUBMITTED)
        assert await _state(uow, order.id) is OrderState.SUBMITTED
        # A late mark of an earlier step changes nothing.
        assert not await uow.orders.transition(order.id, OrderState.UNKNOWN)
        assert not await uow.orders.transition(order.id, OrderState.SUBMITTED)
        assert await uow.orders.transition(order.id, OrderState.SUBMITTED, or_already=True)
        assert await uow.orders.transition(order.id, OrderState.FILLED)
        assert not await uow.orders.transition(order.id, OrderState.CANCELED)
        assert await _state(uow, order.id) is OrderState.FILLED


async def test_a_cancel_among_unfilled_states_leaves_a_partial_fill(sessionmaker: Maker) -> None:
    async with UnitOfWork(sessionmaker) as uow:
        order = await _order(uow, OrderState.PARTIALLY_FILLED)
        assert not await uow.orders.transition(
            order.id, OrderState.CANCELED, among=UNFILLED_ORDER_STATES
        )
        assert await _state(uow, order.id) is OrderState.PARTIALLY_FILLED
        with pytest.raises(IllegalTransitionError):
            await uow.orders.transition(order.id, OrderState.SUBMITTED, among=[OrderState.FILLED])


async def test_a_locked_row_moves_in_the_session(sessionmaker: Maker) -> None:
    async with UnitOfWork(sessionmaker) as uow:
        order = await _order(uow, OrderState.UNKNOWN)
        assert await uow.orders.transition(order, OrderState.REJECTED, error="refused")
        assert (order.state, order.error) == (OrderState.REJECTED, "refused")
        assert not await uow.orders.transition(order, OrderState.EXPIRED, error="late")
        assert (order.state, order.error) == (OrderState.REJECTED, "refused")


def test_an_alert_moves_once_to_a_final_state() -> None:
    alert = Alert(user_id=1, body_hash="0" * 64, state=AlertState.PROCESSING)
    assert AlertRepository.transition(alert, AlertState.EXECUTED, reason=None)
    assert alert.state is AlertState.EXECUTED
    assert not AlertRepository.transition(alert, AlertState.FAILED, reason="late")
    assert (alert.state, alert.reason) == (AlertState.EXECUTED, None)
