"""Pytest fixtures for the dYdX v4 double.

* ``dydx_double`` — a fresh, started :class:`DydxDouble` per test (starts in well under 1 s).
* ``dydx_env`` — the env overrides a product settings object is built from.
* ``funded_trader`` — an owner with USDC in subaccount 0 and a web-app style API trading key.

Example:
    >>> def test_something(dydx_double, funded_trader, monkeypatch):  # doctest: +SKIP
    ...     for key, value in dydx_env_overrides(dydx_double).items():
    ...         monkeypatch.setenv(key, value)
    ...     dydx_double.set_oracle_price("ETH-USD", "3100")
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from tests.doubles.dydx.double import DydxDouble
from tests.doubles.dydx.keys import new_key, web_app_trading_key_config


@pytest.fixture
def dydx_double() -> Iterator[DydxDouble]:
    """A started dYdX double with fresh state; stopped after the test."""
    double = DydxDouble().start()
    try:
        yield double
    finally:
        double.stop()


def dydx_env_overrides(double: DydxDouble) -> dict[str, str]:
    """``DYDX_*`` environment overrides pointing a product at ``double``."""
    return double.env()


@pytest.fixture
def dydx_env(dydx_double: DydxDouble) -> dict[str, str]:
    """Env overrides for the per-test double."""
    return dydx_env_overrides(dydx_double)


@dataclass(frozen=True)
class FundedTrader:
    """An owner account with USDC and an API trading key, as a user would hand them over.

    Attributes:
        owner_address: The owner's ``dydx1…`` address (the subaccount owner).
        owner_private_key_hex: The owner's key (the user's master key — tests only).
        owner_public_key: Compressed owner public key.
        account_number: x/auth account number of the owner.
        api_private_key_hex: The API trading key the web app shows ("Private Key").
        api_public_key: Its compressed public key.
        api_address: Its address (the web app's "API Wallet Address").
        authenticator_id: Id of the AllOf authenticator that authorizes the API key.
        subaccount_number: The funded subaccount.
    """

    owner_address: str
    owner_private_key_hex: str
    owner_public_key: bytes
    account_number: int
    api_private_key_hex: str
    api_public_key: bytes
    api_address: str
    authenticator_id: int
    subaccount_number: int = 0


def make_funded_trader(
    double: DydxDouble, usdc: Decimal | str = Decimal("10000"), subaccount_number: int = 0
) -> FundedTrader:
    """Create an owner from a fresh key, deposit USDC and authorize an API trading key.

    The authenticator is exactly what the dYdX web app's "API Trading Keys" adds:
    ``AllOf[SignatureVerification(api pubkey), AnyOf[MessageFilter(MsgPlaceOrder),
    MessageFilter(MsgCancelOrder), MessageFilter(MsgBatchCancel)], SubaccountFilter("0")]``.
    """
    owner = new_key()
    api = new_key()
    account = double.create_account(owner.address, owner.public_key)
    account_number = double.call(lambda: account.account_number)
    double.deposit(owner.address, subaccount_number, Decimal(usdc))
    authenticator_id = double.add_authenticator(
        owner.address, "AllOf", web_app_trading_key_config(api.public_key)
    )
    return FundedTrader(
        owner_address=owner.address,
        owner_private_key_hex=owner.private_key_hex,
        owner_public_key=owner.public_key,
        account_number=account_number,
        api_private_key_hex=api.private_key_hex,
        api_public_key=api.public_key,
        api_address=api.address,
        authenticator_id=authenticator_id,
        subaccount_number=subaccount_number,
    )


@pytest.fixture
def funded_trader(dydx_double: DydxDouble) -> FundedTrader:
    """A trader with 10,000 USDC in subaccount 0 and a web-app style API trading key."""
    return make_funded_trader(dydx_double)
