"""gRPC node of the dYdX v4 double: what ``dydx_v4_client.node.client.NodeClient`` talks to.

A ``grpc.aio`` server built from the v4_proto ``*Servicer`` classes, serving one
:class:`~doubles.dydx.state.ChainState` (shared with the Indexer double). It runs on the
double's own event loop; every handler runs to completion between awaits, so the state is only
touched from that loop.

Services:

* ``cosmos.tx.v1beta1.Service``: ``BroadcastTx`` (decode, authenticate as the chain's ante
  handler does — see :mod:`doubles.dydx.auth` — then apply the messages), ``Simulate``
  and ``GetTx``;
* ``cosmos.auth.v1beta1.Query/Account``, ``cosmos.bank.v1beta1.Query`` balances (always empty:
  the double keeps USDC in subaccounts only);
* ``cosmos.base.tendermint.v1beta1.Service``: ``GetLatestBlock``, ``GetNodeInfo``;
* ``dydxprotocol.accountplus.Query``, ``dydxprotocol.clob.Query`` (clob pairs),
  ``dydxprotocol.prices.Query``, ``dydxprotocol.perpetuals.Query`` and
  ``dydxprotocol.subaccounts.Query``.

Transaction answers follow cosmos-sdk's SYNC broadcast: ``tx_response{txhash, code, codespace,
raw_log}`` with ``height`` 0 (CheckTx has no height), and a byte-identical re-broadcast of a
transaction CheckTx already accepted answers ``code 19`` / ``sdk`` with an empty raw log (what
``CheckCometError`` makes of CometBFT's "tx already exists in cache"). Deviation from the chain,
kept because it helps tests: message-execution errors of non-clob messages (e.g. an invalid
``MsgAddAuthenticator``) are answered at once instead of only in the block result; the ante
changes (sequence) are still kept, as on the chain.

Tests drive faults with :meth:`NodeServer.reject_next`, :meth:`NodeServer.hang` and
:meth:`NodeServer.unavailable`, and read every received broadcast in
:attr:`NodeServer.broadcasts`.
"""

from doubles.dydx.node.records import BroadcastMatch, BroadcastRecord, TxOutcome
from doubles.dydx.node.server import NodeServer
from doubles.dydx.node.start import start_node

__all__ = ["BroadcastMatch", "BroadcastRecord", "NodeServer", "TxOutcome", "start_node"]
