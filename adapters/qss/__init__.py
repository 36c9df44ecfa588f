"""Q(s,s') and Deep Deterministic Dynamics Gradients (Edwards et al., arXiv:2002.09505).

Reinforcement learning written as a harness spec: environments are datasets
(``qss/gridworld``, ``qss/gym``, ``qss/gym-observed``), agents are methods
(``qss/q-learning``, ``qss/qss``, ``qss/bco``, ``qss/d3g``, ``qss/standard-qss``,
``qss/td3``, ``qss/random-policy``, ``qss/observational-d3g``, ``qss/deep-bco``), and
returns are metrics (``qss/episodes-to-optimal``, ``qss/final-return``,
``qss/return-curve``, ``qss/forward-model-error``, ``qss/cycle-loss``). See ``docs/qss.md``.
"""

from __future__ import annotations

from harness import Adapter, hookimpl

from .deep_methods import D3G, TD3, RandomPolicy, StandardQSS
from .gridworld import GridWorldDataset
from .gymtask import GymEnvironment
from .metrics import METRICS
from .observation import BCO
from .observational import DeepBCO, ObservationalD3G
from .observers import ObservedGymEnvironment
from .tabular import QSS, QLearning

ADAPTERS: list[type[Adapter]] = [GridWorldDataset, GymEnvironment, ObservedGymEnvironment,
                                 QLearning, QSS, BCO, D3G, StandardQSS, TD3, RandomPolicy,
                                 ObservationalD3G, DeepBCO, *METRICS]


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return ADAPTERS
