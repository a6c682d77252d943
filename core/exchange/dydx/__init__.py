"""dYdX v4: non-blocking node and Indexer readers, and pure key/authenticator analysis."""
