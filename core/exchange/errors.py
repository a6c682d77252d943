"""Errors of the exchange adapters. Messages never carry secrets or user input."""

from __future__ import annotations


class ExchangeError(Exception):
    """The exchange could not answer a question.

    Attributes:
        retryable: Whether asking again later may succeed.
    """

    retryable: bool = False


class ExchangeUnavailableError(ExchangeError):
    """A node or the Indexer is unreachable, timed out or answered with a server error."""

    retryable = True
