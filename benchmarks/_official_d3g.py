"""vs_official row ``d3g``: uber-research/D3G's ``D3G/main.py`` (D3G and its TD3 baseline)
on gymnasium's Pendulum-v1 against the harness's ``qss/d3g`` and ``qss/td3``.

The official script is run unchanged (``runpy``, as ``python main.py --policy ... --env
Pendulum-v1``) with two shims on its path, written at run time: ``gym``, the old
gym API (``env.seed``, ``reset() -> obs``, ``step() -> (obs, r, done, info)``,
``_max_episode_steps``) over gymnasium, and an empty ``cv2`` (only its ``--visualize``
uses it). Same work on both sides: 256-unit layers (the official width), batch 256, the
first 1,000 steps uniformly random, ``steps`` environment steps, 10 evaluation episodes
every 1,000 steps; headline: the last evaluation's mean return. The harness dataset draws
no held-out transitions (``heldout_transitions: 0``: the official code has no forward-model
test set), so its ``forward_model_error`` is not computed; its value-bias probe and plots
are (part of its run).
"""

from __future__ import annotations

import re
from pathlib import Path

from _official_common import Case, harness_side, script_side

GYM_SHIM = '''
"""The old gym API over gymnasium, for code written against gym <= 0.21."""
import gymnasium


class _Env:
    def __init__(self, env_id, **kwargs):
        self._env = gymnasium.make(env_id, **kwargs)
        self.action_space = self._env.action_space
        self.observation_space = self._env.observation_space
        self._max_episode_steps = self._env.spec.max_episode_steps
        self.unwrapped = self._env.unwrapped
        self._seed = None

    def seed(self, seed=None):
        self._seed = seed
        self.action_space.seed(seed)
        return [seed]

    def reset(self):
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs, reward, terminated or truncated, info

    def render(self, mode="human"):
        return self._env.render()

    def close(self):
        self._env.close()


def make(env_id, **kwargs):
    return _Env(env_id, **kwargs)
'''

D3G_SHIM = """
    # Runs the official D3G/main.py from the checkout with the gym and cv2 shims, 1 thread.
    import os, runpy, sys
    import torch
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    path, policy, steps, start, every, seed = sys.argv[1:7]
    code = os.path.join(path, "D3G")
    sys.path[:0] = [os.path.join(here, "shims"), code]
    sys.argv = ["main.py", "--policy", policy, "--env", "Pendulum-v1", "--seed", seed,
                "--max_timesteps", steps, "--start_timesteps", start, "--eval_freq", every,
                "--batch_size", "256", "--save_dir", here]
    runpy.run_path(os.path.join(code, "main.py"), run_name="__main__")
"""

POLICIES = {"d3g": ("D3G", "qss/d3g"), "td3": ("TD3", "qss/td3")}
START, EVERY = 1000, 1000


def official_headline(_folder: Path, stdout: str) -> dict[str, float]:
    found = re.findall(r"Evaluation over \d+ episodes: ([-0-9.eE+]+)", stdout)
    if not found:
        raise RuntimeError("no 'Evaluation over' line")
    return {"final_return": float(found[-1])}


def cases(checkout: Path, work: Path, steps: int, seed: int) -> list[Case]:
    out = []
    for label, (policy, adapter) in POLICIES.items():
        case_dir = work / label
        start, every = min(START, steps), min(EVERY, steps)
        official = script_side(case_dir / "official", "d3g_shim.py", D3G_SHIM,
                               [str(checkout), policy, str(steps), str(start), str(every),
                                str(seed)], official_headline)
        shims = case_dir / "official" / "shims"
        (shims / "gym").mkdir(parents=True, exist_ok=True)
        (shims / "gym" / "__init__.py").write_text(GYM_SHIM)
        (shims / "cv2.py").write_text('"""Unused by a run without --visualize."""\n')
        method = {"use": adapter, "steps": steps, "start_steps": start, "eval_every": every,
                  "eval_episodes": 10, "hidden": 256, "batch_size": 256}
        spec = {"name": f"vs-official-{label}", "seeds": [seed],
                "datasets": {"pendulum": {"use": "qss/gym", "env_id": "Pendulum-v1",
                                          "heldout_transitions": 0}},
                "methods": {label: method}, "metrics": ["qss/final-return"]}
        harness = harness_side(case_dir / "harness", spec, {"final_return": "final_return"})
        out.append(Case(f"pendulum {label}", official, harness))
    return out
