"""Security primitives: encryption at rest, client addresses and rate limits."""
