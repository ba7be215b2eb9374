"""The reliability section reuses the end-to-end fixtures: real Azurite, the real Graph
simulator over HTTP, the real command line."""

from tests.e2e.conftest import make_world

__all__ = ["make_world"]
