"""harness_adapters returns things that are not adapter classes."""

import harness


class NoName(harness.Method):
    """A method without a name."""


@harness.hookimpl
def harness_adapters():
    return [NoName, 42]
