"""shared/app."""
