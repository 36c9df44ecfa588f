"""Which optional extra of harness-bench installs a missing module.

The map comes from the installed distribution's metadata (``Requires-Dist`` lines with an
``extra == "..."`` marker, i.e. ``[project.optional-dependencies]`` in pyproject.toml), so a
new extra needs no code here. A module maps to a requirement when their names agree once
normalized (``rouge_score`` = ``rouge-score``, ``dask.distributed`` -> ``dask``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import metadata

from .errors import HarnessError

DISTRIBUTION = "harness-bench"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def requirement_extras(distribution: str = DISTRIBUTION) -> dict[str, list[str]]:
    """Normalized requirement name -> the extras that install it (``{}`` when the
    distribution is not installed)."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, list[str]] = {}
    bundles: list[tuple[str, list[str]]] = []  # `all = ["harness-bench[lm,rl]"]`
    for line in requires:
        name, extra = _NAME.match(line), _EXTRA.search(line)
        if name is None or extra is None:
            continue
        if _norm(name.group(1)) == _norm(distribution):
            inner = re.search(r"\[([^\]]*)\]", line)
            bundles.append((extra.group(1), [e.strip() for e in
                                             (inner.group(1) if inner else "").split(",")]))
            continue
        out.setdefault(_norm(name.group(1)), []).append(extra.group(1))
    for bundle, members in bundles:
        for extras in out.values():
            if any(m in extras for m in members) and bundle not in extras:
                extras.append(bundle)
    return out


def extra_for_module(module: str, distribution: str = DISTRIBUTION) -> str | None:
    """The extra that installs ``module`` (its top-level package), or None."""
    extras = requirement_extras(distribution)
    found = extras.get(_norm(module.split(".")[0])) or extras.get(_norm(module))
    if not found:
        return None
    specific = [e for e in found if e not in ("all", "test")]
    return (specific or found)[0]


def missing_dependency(exc: ModuleNotFoundError) -> HarnessError:
    """A user error for a module an adapter needs and the environment lacks."""
    module = (exc.name or str(exc)).split(".")[0]
    extra = extra_for_module(module)
    if extra is not None:
        return HarnessError(f"this cell needs the Python package {module!r}, which is not "
                            f"installed (it comes with the {extra!r} extra)",
                            hint=f"pip install '{DISTRIBUTION}[{extra}]' (or "
                            f"'{DISTRIBUTION}[all]' for every optional dependency)")
    known = sorted({e for es in requirement_extras().values() for e in es} - {"test"})
    return HarnessError(f"this cell needs the Python module {module!r}, which is not installed",
                        hint=f"install the package that provides it (pip install {module})"
                        + (f"; harness-bench's optional extras: {', '.join(known)}"
                           if known else ""))
