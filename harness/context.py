"""The run context every adapter call receives: seed, generators, device, folders, logger,
progress. Adapters draw randomness only from here, never from global state."""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import datacache
from .cells import derive_seed

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .adapter import Component

ProgressCallback = Callable[[str, int, int | None], None]


class Progress:
    """Reports steps of long work: ``with ctx.progress.task("train", total=n) as tick: tick()``.

    The runner connects it to the terminal; adapters only call it.
    """

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self.callback = callback

    @contextmanager
    def task(self, label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        done = 0

        def tick(n: int = 1) -> None:
            nonlocal done
            done += n
            if self.callback is not None:
                self.callback(label, done, total)

        tick(0)
        yield tick


def _cpu() -> torch.device:
    import torch
    return torch.device("cpu")


@dataclass
class RunContext:
    """Everything an adapter call may use besides its params."""

    seed: int
    device: torch.device = field(default_factory=lambda: _cpu())
    # the runner always sets a cell's artifacts folder; a hand-made context (tests,
    # notebooks) writes to a scratch folder, never into the working directory
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "harness-scratch")
    cache_dir: Path = field(default_factory=lambda: Path(".harness-cache"))
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("harness"))
    progress: Progress = field(default_factory=Progress)
    label: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    spec_seed: int | None = None
    spec_dir: Path | None = None  # the spec's folder: relative paths in params resolve here

    @cached_property
    def rng(self) -> np.random.Generator:
        """A numpy Generator seeded from this context's seed."""
        import numpy as np
        return np.random.default_rng(self.seed)

    @cached_property
    def generator(self) -> torch.Generator:
        """A torch Generator (on CPU) seeded from this context's seed."""
        import torch
        return torch.Generator().manual_seed(self.seed)

    def derive(self, label: str) -> RunContext:
        """A child context with an independent seed, e.g. one per task or per phase."""
        return RunContext(seed=derive_seed(self.seed, label), device=self.device,
                          work_dir=self.work_dir, cache_dir=self.cache_dir, logger=self.logger,
                          progress=self.progress, label=f"{self.label}/{label}",
                          extras=self.extras, spec_seed=self.spec_seed,
                          spec_dir=self.spec_dir)

    def load_dataset(self, component: Component) -> Any:
        """Load a nested dataset component (e.g. the one a wrapper wraps).

        A reference to a top-level dataset by name loads exactly as that dataset does in
        its own cells (its own seed, the same cached object); an inline component gets
        a seed derived from this context."""
        if component.spec_name is not None and self.spec_seed is not None:
            seed = derive_seed(self.spec_seed, "dataset", component.spec_name)
        else:
            seed = derive_seed(self.seed, "inner")  # as self.derive("inner")
        return datacache.load_component_data(component, seed, self)

    def for_data(self, seed: int, label: str) -> RunContext:
        """The context a dataset loader receives: this one's device and folders, its own
        seed and label, no extras."""
        return RunContext(seed=seed, device=self.device, work_dir=self.work_dir,
                          cache_dir=self.cache_dir, logger=self.logger,
                          progress=self.progress, label=label, spec_seed=self.spec_seed,
                          spec_dir=self.spec_dir)

    def artifact(self, name: str) -> Path:
        """A path for an artifact file in this cell's artifacts folder."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir / name

    def seed_globals(self) -> None:
        """Seed Python's, numpy's and torch's global generators too, as a safety net for
        library code (e.g. ``torch.nn.Linear`` initialization) that draws from them."""
        import numpy as np
        random.seed(self.seed)
        np.random.seed(self.seed % (2**32))
        seed_torch(self.seed)


def seed_torch(seed: int) -> None:
    """``torch.manual_seed(seed)`` for the devices this machine has: the CPU generator,
    and CUDA's, MPS's and XPU's where available. (``torch.manual_seed`` also queues a
    lazy seeding of every absent accelerator, recording a stack trace each time: about
    0.6 ms a call on a CPU-only machine, a few calls per cell.)"""
    import torch
    torch.default_generator.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        torch.mps.manual_seed(int(seed))
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        xpu.manual_seed_all(int(seed))
