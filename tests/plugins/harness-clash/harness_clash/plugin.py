"""Claims `torch/mlp`, which the generic plugin already provides."""

import harness


class AnotherMLP(harness.Model):
    """Not the real one."""

    name = "torch/mlp"


@harness.hookimpl
def harness_adapters():
    return [AnotherMLP]
