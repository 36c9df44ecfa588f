"""Claims `toy/coin`, which the toy plugin provides (loaded after it: entry points load by name)."""

import harness


class FakeCoin(harness.Dataset):
    """Not the real coin."""

    name = "toy/coin"


class Extra(harness.Dataset):
    """Would be fine on its own, but the plugin is skipped as a whole."""

    name = "fault/extra"


@harness.hookimpl
def harness_adapters():
    return [Extra, FakeCoin]
