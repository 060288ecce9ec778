class DeserializationError(ValueError):
    """A stored item that cannot be used: tampered, truncated, unsigned or unknown."""
