"""The reliability section reuses the end-to-end fixtures: real Azurite, the real Graph
simulator over HTTP, the real command line."""

from tests.e2e.conftest import mailbox_mode, make_world

__all__ = ["mailbox_mode", "make_world"]
