"""Plugin package for the lm adapters (being implemented; registers nothing yet)."""

from __future__ import annotations

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return []
