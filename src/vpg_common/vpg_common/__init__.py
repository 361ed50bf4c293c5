"""What every vpg node shares (no node of its own)."""
