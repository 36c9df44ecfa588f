"""PPLM: plug-and-play controlled generation (Dathathri et al., arXiv 1912.02164).

After uber-research/PPLM ``run_pplm.py`` (Apache-2.0; our own code): a frozen causal LM is
steered, token by token, by gradient steps on its key/value history toward an attribute
model (a bag of words, or a linear discriminator on the LM's hidden states), and the
perturbed next-token distribution is fused with the unperturbed one. See ``docs/pplm.md``
for every choice against the official code.

- :mod:`.kv`: an explicit key/value forward of the LLaMA architecture (SmolLM2);
- :mod:`.perturb`: the perturbation, fusion, top-k and the batched generation loop;
- :mod:`.bags`: our own topic word lists; :mod:`.discrim`: the sentiment head and judge;
- :mod:`.textstats`: hit rates, self-perplexity, dist-n, repetition guard;
- :mod:`.methods`: the adapters ``pplm/prompts``, ``pplm/bow``, ``pplm/discriminator``.
"""

from __future__ import annotations

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    from .methods import ADAPTERS
    return [*ADAPTERS]
