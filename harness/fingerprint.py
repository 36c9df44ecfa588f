"""Stable content hashes of data, configs and arrays, for cell identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

SCHEME_VERSION = "1"


def _update(h: Any, obj: Any) -> None:
    import numpy as np
    import torch
    if hasattr(obj, "fingerprint") and callable(obj.fingerprint):
        h.update(b"F" + str(obj.fingerprint()).encode())
    elif type(obj).__name__ == "Dataset" and hasattr(obj, "_fingerprint"):
        h.update(b"D" + str(obj._fingerprint).encode())  # Hugging Face datasets.Dataset
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"A{a.dtype}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype != object else json.dumps(a.tolist(), default=str).encode())
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(str(key).encode() + b":")
            _update(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _update(h, item)
        h.update(b"]")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        _update(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    elif obj is None or isinstance(obj, (str, int, float, bool)):
        h.update(repr(obj).encode())
    else:
        h.update(f"O{type(obj).__module__}.{type(obj).__qualname__}".encode())
        state = getattr(obj, "__dict__", None)
        if state is not None:
            _update(h, {k: v for k, v in state.items() if not k.startswith("_")})


def fingerprint(obj: Any) -> str:
    """A hex digest of ``obj``'s content (tensors, arrays, HF datasets, containers)."""
    h = hashlib.sha256()
    _update(h, obj)
    return h.hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The full hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cell_identity(config: dict[str, Any], versions: dict[str, str], data_fp: str,
                  settings: dict[str, Any]) -> str:
    """Hash of resolved config, adapter versions, data fingerprint and scheme version."""
    return config_hash({"scheme": SCHEME_VERSION, "config": config, "versions": versions,
                        "data": data_fp, "settings": settings})
