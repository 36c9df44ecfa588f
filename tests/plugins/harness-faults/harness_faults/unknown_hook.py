"""A misspelt hook name."""

import harness


@harness.hookimpl
def harness_adapter():
    return []
