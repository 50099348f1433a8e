"""The system around the compiled model: the sealed template store (and, later, the protocol)."""
