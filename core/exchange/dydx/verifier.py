"""``DydxKeyVerifier``: the :class:`~core.exchange.keys.KeyVerifier` on dYdX v4.

Checks run cheapest first: the text itself, then the node (the owner's authenticators); the
Indexer screens owners. The key's plaintext lives only in local variables here and in the
returned :class:`~core.exchange.keys.VerifiedKey`.
"""

from __future__ import annotations

from core.domain.compliance import ComplianceStatus
from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.keys import (
    address_of,
    check_not_master,
    find_trading_authorization,
    parse_address,
    parse_private_key,
    public_key_of,
)
from core.exchange.dydx.node import NodeReader
from core.exchange.keys import KeyCheckError, KeyProblem, VerifiedKey


class DydxKeyVerifier:
    """Checks dYdX owner addresses and API trading keys, and screens owners.

    Args:
        node: Reads the owner's authenticators (closed with the verifier).
        indexer: Screens the owner's address (closed with the verifier).
    """

    def __init__(self, node: NodeReader, indexer: IndexerClient) -> None:
        self._node = node
        self._indexer = indexer

    def parse_owner_address(self, text: str) -> str:
        """The canonical (lower-case) ``dydx1…`` address.

        Raises:
            KeyCheckError: ``MALFORMED_ADDRESS``, ``MNEMONIC`` or ``KEY_INSTEAD_OF_ADDRESS``.
        """
        return parse_address(text)

    async def verify_key(self, owner_address: str, private_key_text: str) -> VerifiedKey:
        """Check that the key may place and cancel orders for the owner, and nothing else.

        Raises:
            KeyCheckError: The address or key is refused.
            ExchangeUnavailableError: The node could not answer.
        """
        owner = parse_address(owner_address)
        # Named so that Sentry's frame variables are blanked by name (bytes have no
        # recognisable shape for the redactor).
        private_key = parse_private_key(private_key_text)
        public_key = public_key_of(private_key)
        key_address = address_of(public_key)
        check_not_master(owner, key_address)
        authorization = find_trading_authorization(
            await self._node.get_authenticators(owner), public_key
        )
        return VerifiedKey(
            owner_address=owner,
            key_address=key_address,
            subaccount_number=authorization.subaccount_number,
            authenticator_id=authorization.authenticator_id,
            private_key=private_key,
        )

    async def check_authorization(
        self, owner_address: str, private_key: bytes, authenticator_id: int
    ) -> None:
        """Re-read the owner's authenticators for a stored key (the worker's daily check).

        Raises:
            KeyCheckError: ``NO_AUTHENTICATOR`` (the stored authenticator is gone),
                ``TOO_BROAD``, ``UNREADABLE_AUTHENTICATOR`` or ``CANNOT_TRADE``.
            ExchangeUnavailableError: The node could not answer.
        """
        authenticators = await self._node.get_authenticators(owner_address)
        if authenticator_id not in {stored.id for stored in authenticators}:
            raise KeyCheckError(KeyProblem.NO_AUTHENTICATOR)
        find_trading_authorization(authenticators, public_key_of(private_key))

    async def compliance_screen(self, address: str) -> ComplianceStatus:
        """The Indexer's compliance status of ``address``.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._indexer.compliance_screen(address)

    async def close(self) -> None:
        """Close the node and Indexer connections."""
        await self._node.close()
        await self._indexer.close()
