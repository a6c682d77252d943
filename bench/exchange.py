"""Benchmark of the dYdX adapter (not a test): sign, and sign + broadcast, of one order.

Drives the production ``DydxExchange`` (dydx-v4-client's builder for signing, grpc.aio for
the broadcast) against the tests' dYdX double — a gRPC node built from v4_proto that
verifies the signature, the authenticator and the sequence — on loopback, with warm caches.
Each order is an IOC buy far below the oracle, so it never fills and every order is alike.

Prints p50 / p99 of signing alone and of sign + broadcast.

    .venv/bin/python bench/exchange.py               # 500 orders
    .venv/bin/python bench/exchange.py --orders 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.domain.states import OrderSide
from core.exchange.dydx.network import DydxNetwork
from core.exchange.dydx.venue import DydxVenue
from core.exchange.orders import OrderKind, OrderRequest, TimeInForce
from core.runtime.config import DydxEndpoints
from core.runtime.logs import configure_logging
from doubles.dydx.accounts import make_funded_trader
from doubles.dydx.double import DydxDouble


class _Nonces:
    """Timestamp nonces in memory; short-term orders never ask for one."""

    async def next_nonce(self, owner_address: str) -> int:
        return int(time.time() * 1000)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _run(double: DydxDouble, orders: int) -> tuple[list[float], list[float]]:
    trader = make_funded_trader(double)
    network = DydxNetwork.from_endpoints(
        DydxEndpoints(
            network="custom",
            indexer_url=double.indexer_url,
            indexer_ws_url=double.indexer_ws_url,
            node_url=double.node_url,
            node_tls=False,
            chain_id=double.chain_id,
        ),
        node_timeout=2.0,
        broadcast_timeout=3.0,
        indexer_timeout=2.0,
    )
    await network.warm_up()
    exchange = DydxVenue(network).trader(
        owner_address=trader.owner_address,
        subaccount_number=trader.subaccount_number,
        authenticator_id=trader.authenticator_id,
        private_key=bytes.fromhex(trader.api_private_key_hex),
        nonces=_Nonces(),
    )
    sign_ms: list[float] = []
    place_ms: list[float] = []
    try:
        height = await exchange.block_height()
        for client_id in range(100, 100 + orders):
            request = OrderRequest(
                market="ETH-USD",
                side=OrderSide.BUY,
                size=Decimal("0.01"),
                kind=OrderKind.MARKET,
                price=Decimal("2000"),
                client_id=client_id,
                time_in_force=TimeInForce.IOC,
                good_til_block=exchange.capabilities.short_term_good_til_block(height),
            )
            started = time.perf_counter()
            signed = await exchange.sign_order(request)
            signed_at = time.perf_counter()
            result = await exchange.broadcast(signed)
            done = time.perf_counter()
            if not result.accepted:
                raise SystemExit(f"the node double refused order {client_id}: {result}")
            sign_ms.append((signed_at - started) * 1000)
            place_ms.append((done - started) * 1000)
    finally:
        await network.close()
    return sign_ms, place_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders to sign and broadcast")
    args = parser.parse_args()
    configure_logging("WARNING", "console")  # not one line per order
    with DydxDouble() as double:
        # A frozen block clock keeps every order inside its good-til-block window.
        double.pause_clock()
        sign_ms, place_ms = asyncio.run(_run(double, args.orders))
    print(f"orders: {len(place_ms)}")
    print(
        f"sign:             p50 {statistics.median(sign_ms):.3f} ms, "
        f"p99 {_percentile(sign_ms, 0.99):.3f} ms"
    )
    print(
        f"sign + broadcast: p50 {statistics.median(place_ms):.2f} ms, "
        f"p99 {_percentile(place_ms, 0.99):.2f} ms"
    )


if __name__ == "__main__":
    main()
