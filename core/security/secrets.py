"""Recognising secrets in free text: private keys and seed phrases.

A trader may paste a key or a seed phrase anywhere; the edges delete such a message and the
key check refuses it, so it never stays in a chat or reaches a log.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_HEX_KEY_SEARCH_RE = re.compile(r"(?<![0-9A-Za-z])(?:0[xX])?[0-9a-fA-F]{64}(?![0-9A-Za-z])")
_WORD_RE = re.compile(r"[a-z]+")
_MNEMONIC_MIN_WORDS = 12
_MNEMONIC_MAX_WORDS = 25  # 24 words plus a slip, or a 25th "passphrase" word


@lru_cache(maxsize=1)
def _bip39_words() -> frozenset[str]:
    # bip_utils (a dependency of dydx-v4-client) ships the official English wordlist.
    wordlist = resources.files("bip_utils.bip.bip39").joinpath("wordlist", "english.txt")
    return frozenset(wordlist.read_text().split())


def looks_like_mnemonic(text: str) -> bool:
    """Whether ``text`` looks like a BIP39 seed phrase.

    Deliberately a little loose (numbering, punctuation and one mistyped word are ignored):
    a phrase must be recognised to be deleted from the chat and refused.
    """
    words = _WORD_RE.findall(text.lower())
    if not _MNEMONIC_MIN_WORDS <= len(words) <= _MNEMONIC_MAX_WORDS:
        return False
    known = _bip39_words()
    return sum(word not in known for word in words) <= 1


def contains_private_key(text: str) -> bool:
    """Whether ``text`` contains something shaped like a private key (64 hex characters)."""
    return _HEX_KEY_SEARCH_RE.search(text) is not None


def looks_secret(text: str) -> bool:
    """Whether ``text`` carries something that must not stay in a chat or reach a log."""
    return contains_private_key(text) or looks_like_mnemonic(text)
