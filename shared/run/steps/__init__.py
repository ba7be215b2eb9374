"""shared/run/steps."""
