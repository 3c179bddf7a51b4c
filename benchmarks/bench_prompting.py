"""Prompt template speed: parse the shipped preset, render 20,000 prompts per mode.

Baseline (same run): the cheapest possible generator for a prompt of the same shape, one
``random.Random.choice`` per slot over the preset's top-level lists and a str.join; it has
no slots, nesting, determinism across machines or cleanup, so the ratio shows what the
template machinery costs on top of picking words.

    .venv/bin/python benchmarks/bench_prompting.py
"""
from __future__ import annotations

import random
import time

from comfyui_ld_portrait.prompting import SHIPPED_WILDCARD_DIR, load_preset

COUNT = 20_000


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parse_s = min(_timed(lambda: load_preset("ld_portrait")) for _ in range(5))
    template = load_preset("ld_portrait")
    print(f"ld_portrait: {template.total:,} combinations, {len(template.slots)} slots, "
          f"{len(template.wildcards)} wildcard files; parse {parse_s * 1e3:.1f} ms")

    lists = []
    for name in ("framing", "age", "ethnicity", "hair_color", "expression", "pose", "lighting", "photo_style"):
        lines = (SHIPPED_WILDCARD_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        lists.append([line.split("::")[-1].strip() for line in lines if line.strip() and not line.startswith("#")])

    def baseline():
        rng = random.Random(0)
        for _ in range(COUNT):
            ", ".join(rng.choice(words) for words in lists)

    baseline_s = min(_timed(baseline) for _ in range(3))
    print(f"baseline random.choice x{len(lists)} + join: {COUNT / baseline_s:,.0f} prompts/s")
    for mode in ("enumerate", "random", "sequential"):
        seconds = min(_timed(lambda: [template.render(i, seed=1, mode=mode) for i in range(COUNT)])
                      for _ in range(3))
        print(f"render {mode:10s}: {COUNT / seconds:,.0f} prompts/s ({seconds * 1e6 / COUNT:.0f} us each), "
              f"{seconds / baseline_s:.1f}x the baseline time; 20,051 prompts in {seconds * 20051 / COUNT:.2f} s")


if __name__ == "__main__":
    main()
