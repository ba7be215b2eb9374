"""shared/run."""
