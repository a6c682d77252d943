"""The domain's vocabulary: state machines, preferences and compliance (no I/O, no frameworks)."""
