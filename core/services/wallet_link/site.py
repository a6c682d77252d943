"""Where links are made: the public site the message names and the chain it is signed on."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from core.runtime.config import Settings

# The Ethereum chain wallets are linked on, per dYdX network (dYdX's own onboarding uses
# mainnet for mainnet and Sepolia for testnet). Custom networks are local set-ups: mainnet.
WALLET_CHAINS: dict[str, tuple[int, str]] = {
    "mainnet": (1, "Ethereum"),
    "testnet": (11155111, "Sepolia"),
    "custom": (1, "Ethereum"),
}


@dataclass(frozen=True, slots=True)
class LinkSite:
    """Where links are made: the site the message names and the chain it is signed on.

    Attributes:
        base_url: ``PUBLIC_BASE_URL``, without a trailing slash; also the message's URI.
        chain_id: EIP-155 chain id every message must carry.
        chain_name: The chain's name for people.
        rpc_url: Ethereum JSON-RPC URL for ERC-1271 checks, if configured.
    """

    base_url: str
    chain_id: int = 1
    chain_name: str = "Ethereum"
    rpc_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSite:
        """The site described by the settings."""
        chain_id, chain_name = WALLET_CHAINS[settings.dydx_network]
        rpc = settings.ethereum_rpc_url
        return cls(
            base_url=settings.public_base_url.rstrip("/"),
            chain_id=chain_id,
            chain_name=chain_name,
            rpc_url=rpc.get_secret_value() if rpc is not None else None,
        )

    @property
    def domain(self) -> str:
        """The RFC 3986 authority (host[:port]) wallets compare with the page's origin."""
        return urlsplit(self.base_url).netloc.rpartition("@")[2]

    @property
    def uri(self) -> str:
        """The message's URI."""
        return self.base_url

    def link_url(self, token: str) -> str:
        """The page URL of a token."""
        return f"{self.base_url}/link/{token}"
