"""Accounts, authenticators, subaccounts, transfers, funding and margin of the chain state."""

from __future__ import annotations

import uuid
from decimal import Decimal

from doubles.dydx.authconfig import AuthenticatorError, validate_authenticator
from doubles.dydx.keys import is_valid_address
from doubles.dydx.state.constants import INDEXER_UUID_NAMESPACE
from doubles.dydx.state.core import ChainCore
from doubles.dydx.state.errors import ERR_FAILED_TO_UPDATE_SUBACCOUNTS, OK, TxResult
from doubles.dydx.state.records import (
    Account,
    AuthenticatorRecord,
    FundingPaymentRecord,
    PnlTick,
    Subaccount,
    TransferRecord,
    TxLogEntry,
)


class ChainLedger(ChainCore):
    """x/auth, x/accountplus and x/subaccounts: accounts, collateral, funding, margin."""

    def create_account(self, address: str, pub_key: bytes | None = None) -> Account:
        """Create (or return the existing) x/auth account of ``address``.

        Raises:
            ValueError: ``address`` is not a dydx bech32 address.
        """
        if not is_valid_address(address):
            raise ValueError(f"invalid dydx address {address!r}")
        account = self.accounts.get(address)
        if account is None:
            account = Account(address, self._next_account_number, pub_key=pub_key)
            self._next_account_number += 1
            self.accounts[address] = account
        elif pub_key is not None and account.pub_key is None:
            account.pub_key = pub_key
        return account

    def get_account(self, address: str) -> Account | None:
        """The account of ``address`` if it exists."""
        return self.accounts.get(address)

    # ---------------------------------------------------------------- authenticators

    def add_authenticator(self, owner: str, auth_type: str, config: bytes) -> int:
        """Add an authenticator like ``MsgAddAuthenticator``; returns its global id.

        Raises:
            AuthenticatorError: Unknown type or invalid config (chain's message).
        """
        validate_authenticator(auth_type, config)
        auth_id = self._next_authenticator_id
        self._next_authenticator_id += 1
        self._authenticators.setdefault(owner, {})[auth_id] = AuthenticatorRecord(
            auth_id, auth_type, bytes(config)
        )
        return auth_id

    def add_unvalidated_authenticator(self, owner: str, auth_type: str, config: bytes) -> int:
        """Store an authenticator without this double's validation: one a newer chain
        accepts (a type added by an upgrade) that our client does not know."""
        auth_id = self._next_authenticator_id
        self._next_authenticator_id += 1
        self._authenticators.setdefault(owner, {})[auth_id] = AuthenticatorRecord(
            auth_id, auth_type, bytes(config)
        )
        return auth_id

    @property
    def next_authenticator_id(self) -> int:
        """Id the next added authenticator will get (the chain's global counter)."""
        return self._next_authenticator_id

    def remove_authenticator(self, owner: str, authenticator_id: int) -> None:
        """Remove an authenticator like ``MsgRemoveAuthenticator``.

        Raises:
            AuthenticatorError: No such authenticator for ``owner``.
        """
        owned = self._authenticators.get(owner, {})
        if authenticator_id not in owned:
            raise AuthenticatorError(
                f"authenticator with id {authenticator_id} does not exist for account {owner}"
            )
        del owned[authenticator_id]

    def get_authenticators(self, owner: str) -> list[AuthenticatorRecord]:
        """Authenticators of ``owner`` ordered by id."""
        return sorted(self._authenticators.get(owner, {}).values(), key=lambda a: a.id)

    def get_authenticator(self, owner: str, authenticator_id: int) -> AuthenticatorRecord | None:
        """One authenticator of ``owner`` if it exists."""
        return self._authenticators.get(owner, {}).get(authenticator_id)

    # ---------------------------------------------------------------- subaccounts

    def get_subaccount(self, address: str, number: int) -> Subaccount | None:
        """The subaccount if it was ever funded."""
        return self.subaccounts.get((address, number))

    def deposit(self, address: str, subaccount_number: int, usdc: Decimal) -> Subaccount:
        """Deposit USDC into a subaccount (creating account and subaccount as needed)."""
        amount = Decimal(usdc)
        if amount <= 0:
            raise ValueError("deposit must be positive")
        with self._batch():
            self.create_account(address)
            sub = self._subaccount(address, subaccount_number)
            sub.usdc += amount
            sub.net_transfers += amount
            self._record_transfer(sub, amount, "DEPOSIT")
        return sub

    def withdraw(self, address: str, subaccount_number: int, usdc: Decimal) -> TxResult:
        """Withdraw USDC if the subaccount stays collateralized (``MsgWithdrawFromSubaccount``)."""
        amount = Decimal(usdc)
        sub = self.subaccounts.get((address, subaccount_number))
        if amount <= 0 or sub is None:
            return ERR_FAILED_TO_UPDATE_SUBACCOUNTS.result("nothing to withdraw")
        if self.equity(sub) - amount < self.initial_margin(sub):
            result = ERR_FAILED_TO_UPDATE_SUBACCOUNTS.result(
                f"withdrawal of {amount} USDC would undercollateralize subaccount "
                f"{address}/{subaccount_number}"
            )
        else:
            with self._batch():
                sub.usdc -= amount
                sub.net_transfers -= amount
                self._record_transfer(sub, -amount, "WITHDRAWAL")
            result = OK
        self.tx_log.append(TxLogEntry(self.height, "withdraw", sub.key, result.code))
        return result

    def pay_funding(self, rates: dict[str, Decimal]) -> list[FundingPaymentRecord]:
        """Settle a funding tick: every open position in a market of ``rates`` pays (or
        receives) ``signed size × oracle price × rate`` from its USDC, counted in the
        position's net funding and recorded for the Indexer.

        Args:
            rates: The funding rate of the tick by market (positive: longs pay shorts).
        """
        paid: list[FundingPaymentRecord] = []
        with self._batch():
            for ticker, rate in rates.items():
                market = self.markets[ticker]
                index = self._funding_index.get(ticker, Decimal(0)) + rate * market.oracle_price
                self._funding_index[ticker] = index
                for sub in self.subaccounts.values():
                    position = sub.positions.get(ticker)
                    if position is None or position.size == 0:
                        continue
                    payment = -position.size * market.oracle_price * rate
                    record = FundingPaymentRecord(
                        address=sub.address,
                        subaccount_number=sub.number,
                        ticker=ticker,
                        perpetual_id=market.clob_pair_id,
                        oracle_price=market.oracle_price,
                        size=abs(position.size),
                        side=position.side,
                        rate=rate,
                        payment=payment,
                        funding_index=index,
                        created_at=self.block_time,
                        created_at_height=self.height,
                    )
                    sub.usdc += payment
                    position.net_funding += payment
                    sub.updated_at_height = self.height
                    update = self._update(sub.key)
                    update.asset_changed = True
                    update.positions[position.id] = position
                    self.funding_payments.append(record)
                    paid.append(record)
        return paid

    def _subaccount(self, address: str, number: int) -> Subaccount:
        sub = self.subaccounts.get((address, number))
        if sub is None:
            sub = Subaccount(address, number, self.height, self.height)
            self.subaccounts[sub.key] = sub
        return sub

    def _record_transfer(self, sub: Subaccount, amount: Decimal, kind: str) -> None:
        serial = self._next_serial()
        transfer = TransferRecord(
            id=str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"transfer-{serial}")),
            address=sub.address,
            subaccount_number=sub.number,
            size=abs(amount),
            type=kind,
            created_at=self.block_time,
            created_at_height=self.height,
            transaction_hash=uuid.uuid5(INDEXER_UUID_NAMESPACE, f"tx-{serial}").hex.upper() * 2,
        )
        self.transfers.append(transfer)
        sub.updated_at_height = self.height
        update = self._update(sub.key)
        update.asset_changed = True
        update.transfers.append(transfer)

    def equity(self, sub: Subaccount) -> Decimal:
        """USDC plus the oracle value of every open position."""
        return sub.usdc + sum(
            (p.size * self.markets[p.ticker].oracle_price for p in sub.positions.values()),
            Decimal(0),
        )

    def initial_margin(self, sub: Subaccount) -> Decimal:
        """Initial margin requirement of the open positions."""
        return sum(
            (
                abs(p.size)
                * self.markets[p.ticker].oracle_price
                * self.markets[p.ticker].initial_margin_fraction
                for p in sub.positions.values()
            ),
            Decimal(0),
        )

    def maintenance_margin(self, sub: Subaccount) -> Decimal:
        """Maintenance margin requirement of the open positions."""
        return sum(
            (
                abs(p.size)
                * self.markets[p.ticker].oracle_price
                * self.markets[p.ticker].maintenance_margin_fraction
                for p in sub.positions.values()
            ),
            Decimal(0),
        )

    def free_collateral(self, sub: Subaccount) -> Decimal:
        """Equity minus initial margin (what the Indexer calls freeCollateral)."""
        return self.equity(sub) - self.initial_margin(sub)

    def position_size(self, address: str, number: int, ticker: str) -> Decimal:
        """Signed open position size (0 if none)."""
        sub = self.subaccounts.get((address, number))
        if sub is None or ticker not in sub.positions:
            return Decimal(0)
        return sub.positions[ticker].size

    def record_pnl_snapshot(self) -> None:
        """Record a historical-pnl tick for every subaccount now."""
        for sub in self.subaccounts.values():
            equity = self.equity(sub)
            self.pnl_ticks.append(
                PnlTick(
                    id=str(
                        uuid.uuid5(INDEXER_UUID_NAMESPACE, f"pnl-{sub.uuid}-{self._next_serial()}")
                    ),
                    address=sub.address,
                    subaccount_number=sub.number,
                    equity=equity,
                    total_pnl=equity - sub.net_transfers,
                    net_transfers=sub.net_transfers,
                    created_at=self.block_time,
                    block_height=self.height,
                    block_time=self.block_time,
                )
            )

    def _subaccount_or_empty(self, address: str, number: int) -> Subaccount:
        return self.subaccounts.get((address, number)) or Subaccount(address, number, 0, 0)
