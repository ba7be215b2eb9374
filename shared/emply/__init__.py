"""shared/emply."""
