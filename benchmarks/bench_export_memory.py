"""Benchmark: peak memory of the sharded exports does not grow with the dataset.

Writes two datasets of random 384 x 384 portraits (100 and 400 samples by default: about 60 and
240 MB of PNGs) into a temporary folder, exports each as ``hf`` (Parquet) and ``webdataset``
(tar) with 16 MB shards, each export in a fresh Python process, and prints each process's peak
resident memory (``VmHWM``, including Python, numpy, OpenCV and pyarrow) with the ratio of
the large dataset's peak to the small one's (flat: about 1.0). It also prints the same ratio
for the data size, the growth a memory-bound export would show.

    python benchmarks/bench_export_memory.py [--sizes 100,400] [--side 384] [--shard-mb 16]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import benchtools  # noqa: F401  (puts tests/ on sys.path)
from comfyui_ld_portrait.dataset import DatasetWriter

CHILD = """
import sys
from comfyui_ld_portrait.dataset.export_shards import ShardOptions, export_shards
result = export_shards(sys.argv[1], sys.argv[2], ShardOptions(sys.argv[3], shard_mb=float(sys.argv[4])))
assert not result.failures and not result.interrupted, result.failures
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])  # KiB: this image's own peak
"""


def make_dataset(root: Path, count: int, side: int) -> int:
    """``count`` random portraits; returns the bytes of their PNGs."""
    writer = DatasetWriter(root, durable=False)
    for number in range(count):
        rng = np.random.default_rng(number)
        fg = rng.random((side, side, 3), dtype=np.float32)
        alpha = np.clip(rng.random((side, side), dtype=np.float32) * 1.5 - 0.25, 0, 1)
        writer.write_sample(f"p{number:05d}", fg, alpha, meta={"prompt": f"portrait {number}", "seed": number})
    return sum(path.stat().st_size for path in root.rglob("*.png"))


def peak_kib(source: Path, dest: Path, layout: str, shard_mb: float) -> int:
    output = subprocess.run([sys.executable, "-c", CHILD, str(source), str(dest), layout, str(shard_mb)],
                            check=True, capture_output=True, text=True).stdout
    return int(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,400")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--shard-mb", type=float, default=16.0)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = {n: make_dataset(scratch / f"ds{n}", n, args.side) for n in sizes}
        print(f"samples {args.side} px, shards {args.shard_mb:g} MB; peak resident memory per export process")
        print(f"{'layout':<12}" + "".join(f"{f'{n} samples':>16}" for n in sizes) + f"{'ratio':>8}")
        for layout in ("hf", "webdataset"):
            peaks = [peak_kib(scratch / f"ds{n}", scratch / f"{layout}{n}", layout, args.shard_mb) for n in sizes]
            cells = "".join(f"{p / 1024:>13.0f} MB" for p in peaks)
            print(f"{layout:<12}{cells}{peaks[-1] / peaks[0]:>8.2f}")
        print(f"{'data':<12}" + "".join(f"{data[n] / 1e6:>13.0f} MB" for n in sizes)
              + f"{data[sizes[-1]] / data[sizes[0]]:>8.2f}")


if __name__ == "__main__":
    main()
