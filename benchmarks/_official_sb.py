"""vs_official row ``sb``: angelajiang/SelectiveBackprop's selector (``lib/selectors.py``
``PrimedSelector`` over ``SamplingSelector`` with ``lib/calculators.py``
``BatchedRelativeProbabilityCalculator``, history 1024, sampling_min 0, as
``lib/SelectiveBackpropper.py`` builds them) against the harness's
``selection/selective-backprop`` on the same stream of per-example losses.

The stream is written once by this script (``steps`` epochs of 10,000 examples in
candidate batches of 128; each example's loss is a fixed log-normal draw that shrinks
epoch by epoch, as a training run's losses do) and read by both sides, so the selectors see
the same numbers in the same order. Each side primes one epoch (every candidate kept, no
history), then keeps each candidate with probability ``percentile(loss)**beta``
(``prob_pow`` = beta = 3, the authors' train.py default). The official side calls
``mark`` on a batch of example shims (``.example.loss``) and ``next_partition`` after each
epoch, as its ``MemoizedTrainer`` and ``SelectiveBackpropper`` do; the harness side calls
the policy's ``select`` with the stream's losses as its ``losses_of``. Headline: the number
of examples kept (backprops; a binomial draw, so the two differ by seed noise) and the mean
keep probability after priming (a function of the stream alone: equal on both sides).
The training around the selector (forward passes, the model) is not part of this row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _official_common import Case, Side, json_headline, script_side

N_TRAIN, BATCH, BETA = 10_000, 128, 3.0

OFFICIAL = """
    # The official selector from the checkout, fed the stream (see _official_sb.py).
    import json, sys
    from types import SimpleNamespace
    import numpy as np
    import torch
    torch.set_num_threads(1)
    path, stream, batch, beta, seed = sys.argv[1:6]
    sys.path.insert(0, path)
    from lib import calculators, selectors
    np.random.seed(int(seed))
    losses = np.load(stream)
    epochs, n = losses.shape
    calc = calculators.get_probability_calculator("relative", "cpu", None, 0, 1, 10, 1024,
                                                  float(beta))
    selector = selectors.get_selector("sampling", calc, n, 0)
    kept = prob_sum = selective = 0
    for epoch in range(epochs):
        for i in range(0, n, int(batch)):
            batch_ = [SimpleNamespace(example=SimpleNamespace(loss=float(x)))
                      for x in losses[epoch, i:i + int(batch)]]
            primed = selector.get_selector() is selector.initial
            for em in selector.mark(batch_):
                kept += bool(em.example.select)
                if not primed:
                    prob_sum += em.example.select_probability
                    selective += 1
        selector.next_partition(n)
    json.dump({"kept": kept, "mean_keep_prob": prob_sum / max(1, selective)},
              open("headline.json", "w"))
"""

HARNESS = """
    # The harness's selection/selective-backprop, fed the stream (see _official_sb.py).
    import json, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from harness import RunContext
    from harness.registry import get_registry
    stream, batch, beta, seed = sys.argv[1:5]
    losses = np.load(stream)
    epochs, n = losses.shape
    cls = get_registry().get("selection/selective-backprop")
    policy = cls(cls.Params(beta=float(beta)))
    policy.start(RunContext(seed=int(seed)), n)
    flat = torch.from_numpy(losses.reshape(-1))
    for epoch in range(epochs):
        for i in range(0, n, int(batch)):
            idx = torch.arange(epoch * n + i, epoch * n + min(n, i + int(batch)))
            policy.select(idx, lambda c: flat[c])
    stats = policy.stats()
    json.dump({"kept": stats["kept"], "mean_keep_prob": stats["mean_keep_probability"]},
              open("headline.json", "w"))
"""


def write_stream(path: Path, epochs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.0, N_TRAIN)
    decay = 0.7 ** np.arange(epochs)[:, None]
    noise = rng.lognormal(0.0, 0.3, (epochs, N_TRAIN))
    np.save(path, (base[None, :] * decay * noise).astype(np.float32))


def cases(checkout: Path, work: Path, steps: int, seed: int) -> list[Case]:
    work.mkdir(parents=True, exist_ok=True)
    stream = work / "losses.npy"
    write_stream(stream, steps, seed)
    official = script_side(work / "official", "sb_shim.py", OFFICIAL,
                           [str(checkout), str(stream), str(BATCH), str(BETA), str(seed)],
                           json_headline)
    harness: Side = script_side(work / "harness", "sb_harness.py", HARNESS,
                                [str(stream), str(BATCH), str(BETA), str(seed)],
                                json_headline)
    return [Case(f"selector, {steps} epochs", official, harness)]
