"""harness_adapters raises."""

import harness


@harness.hookimpl
def harness_adapters():
    raise RuntimeError("adapters hook is broken")
