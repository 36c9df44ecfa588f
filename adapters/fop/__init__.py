"""First-Order Preconditioning (Moskovitz et al., arXiv:1910.08461) and Baydin et al.'s
hypergradient descent (SGD-HD) as optimizer components, with an ill-conditioned quadratic
benchmark and a grid-tuning wrapper (``fop/tuned``) that compares optimizers each at its
best learning rate. See ``optim.py`` for the algorithm and ``docs/fop.md`` for the derivation."""

from __future__ import annotations

from harness import Adapter, hookimpl

from .components import ADAPTERS as COMPONENTS
from .quadratic import ADAPTERS as QUADRATIC
from .tuning import ADAPTERS as TUNING


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return [*COMPONENTS, *QUADRATIC, *TUNING]
