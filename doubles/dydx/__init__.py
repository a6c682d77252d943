"""dYdX v4 double: chain state, gRPC node, Indexer REST and WebSocket."""
