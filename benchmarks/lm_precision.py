"""What lower precision would buy the language-model cells, and what it would change.

SmolLM2-135M (the default specs' model, loaded as ``lm/causal`` loads it) in float32 and
in bfloat16, one torch thread, alternating ``--repeat`` times on the same English text
(the project's README, its first ``--tokens`` tokens): tokens per second of one full
forward (the scoring cells' kind of work), and how far the bfloat16 next-token
log-probabilities are from float32's (the largest difference, and the share of positions
whose most likely next token differs). A speed-up that changes numbers is not one the
harness applies by itself (docs/performance.md); this measures the trade for a user who
would set ``models.<name>.dtype: bfloat16``.

    python benchmarks/lm_precision.py [--tokens 512] [--repeat 3] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from harness_adapters.lm import loading

    from harness.cachedir import default_cache

    torch.set_num_threads(1)
    cache = default_cache()
    source = loading.resolve(args.model)
    loaded = {dt: loading.load(source, dtype=dt, device=torch.device("cpu"), cache_dir=cache,
                               share=False) for dt in ("float32", "bfloat16")}
    models = {dt: model for dt, (model, _, _) in loaded.items()}
    tokenizer = loaded["float32"][1]
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :args.tokens]
    if ids.shape[1] < args.tokens:
        parser.error(f"the README has only {ids.shape[1]} tokens: use --tokens {ids.shape[1]}")
    speeds: dict[str, list[float]] = {dt: [] for dt in models}
    logprobs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for model in models.values():
            model(ids[:, :32])  # warm-up
        for _ in range(max(1, args.repeat)):
            for dt, model in models.items():
                t0 = time.perf_counter()
                logits = model(ids).logits
                speeds[dt].append(args.tokens / (time.perf_counter() - t0))
                logprobs[dt] = logits.float().log_softmax(-1)[0]
    f32, b16 = logprobs["float32"], logprobs["bfloat16"]
    print(f"{args.model}, {args.tokens} tokens, 1 thread, medians of {args.repeat} "
          "alternating forwards")
    for dt, values in speeds.items():
        print(f"  {dt:9s} {statistics.median(values):7.0f} tokens/s  "
              f"(each: {', '.join(f'{v:.0f}' for v in values)})")
    ratio = statistics.median(speeds["bfloat16"]) / statistics.median(speeds["float32"])
    print(f"  bfloat16 / float32 speed: {ratio:.2f}x")
    differs = float((f32.argmax(-1) != b16.argmax(-1)).float().mean())
    print(f"  largest |log p| difference: {float((f32 - b16).abs().max()):.4f}; "
          f"next-token argmax differs at {differs:.1%} of positions")


if __name__ == "__main__":
    main()
