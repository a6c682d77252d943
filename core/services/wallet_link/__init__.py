"""Wallet link: a Telegram user proves control of an Ethereum address with EIP-4361.

The bot issues a one-time token (only its hash is stored) behind a link to the web page;
the page asks the wallet to sign a message this service wrote, with a fresh nonce stored on
the request; ``WalletLinkService.verify`` checks it in the order of the security notes
(parse strictly; exact domain, URI and chain id; our unused nonce; times; signer), then
consumes the request atomically and stores the link, the audit entry and the bot's
confirmation in one transaction.

Modules: :mod:`.service` (``WalletLinkService``: link requests, their transactions),
:mod:`.message` (writing and checking the EIP-4361 message), :mod:`.signature` (the signer:
EIP-191, or ERC-1271/6492 through an Ethereum RPC), :mod:`.site` (where links are made),
:mod:`.views` (what the edges show) and :mod:`.errors` (the refusals).
"""
