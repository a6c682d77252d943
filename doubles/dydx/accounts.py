"""Funded dYdX accounts on the double, as a trader would hand them over.

A fresh owner with USDC in a subaccount and an API trading key authorized by exactly the
authenticator the dYdX web app's "API Trading Keys" adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key, web_app_trading_key_config


def dydx_env_overrides(double: DydxDouble) -> dict[str, str]:
    """``DYDX_*`` environment overrides pointing a product at ``double``."""
    return double.env()


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
