"""shared/notify."""
