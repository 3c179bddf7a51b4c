"""Benchmark: 8-pass transparent decoding, native vs upstream's diffusers-based procedure.

Both sides use the same random weights in the published layout (real weights are not needed
for timing). "upstream" is a diffusers-built UNet1024 run the way upstream's
``estimate_augmented`` runs it: 8 orientations one after another, clip, median. "ours" is
``layerdiffusion.tta.decode_transparent`` with the strategy it picks for the device
("sequential" on CPU); "ours-batched" (``--impls``) forces the batched strategy, to show why
it is not picked on CPU (no faster there, several times the memory).

Every measurement runs in a fresh child process, so the peak-memory figure belongs to that
decode alone: the child's peak resident set size during the decode minus its resident size
before it (the peak is reset through /proc/self/clear_refs; tracemalloc does not see torch's
allocations). On CUDA it is torch.cuda.max_memory_allocated. Each child decodes twice, cold
(memory) then warm; the faster time counts. Implementations alternate within
each repeat, so background load hits both alike; the fastest repeat is reported.

Needs diffusers (a test extra). Run:

    .venv/bin/python benchmarks/bench_decoder.py                 # 256 and 512, ~3-5 minutes
    .venv/bin/python benchmarks/bench_decoder.py --threads 1 --impls upstream ours ours-batched
    .venv/bin/python benchmarks/bench_decoder.py --sizes 1024 --device cuda --dtype float16
    .venv/bin/python benchmarks/bench_decoder.py --tta-quality   # 1/2/4 vs 8 passes (random weights)
    # Flux (16 latent channels), our decode at 1/2/4/8 passes against the 8-pass reference:
    .venv/bin/python benchmarks/bench_decoder.py --latent-channels 16 --sizes 1024 --device cuda \
        --dtype bfloat16 --passes 1 2 4 8
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

import torch


# The upstream reference and random weights are the ones the tests check against.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
from helpers.decoder_reference import build_diffusers_reference, random_network_state, upstream_augmented  # noqa: E402
from comfyui_ld_portrait.layerdiffusion.tta import (
    PASS_ORIENTATIONS,
    UPSTREAM_ORIENTATIONS,
    decode_transparent,
    merge_passes,
    orient,
    unorient,
)
from comfyui_ld_portrait.layerdiffusion.weights import load_transparent_decoder


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _rss_bytes(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) from /proc/self/status; ru_maxrss when unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _child(impl, size, weights_path, device, dtype_name, threads, queue, latent_channels=4, passes=8):
    try:
        if threads:
            torch.set_num_threads(threads)
        dtype = getattr(torch, dtype_name)
        dev = torch.device(device)
        import safetensors.torch

        state = safetensors.torch.load_file(weights_path)
        if impl == "upstream":
            network = build_diffusers_reference(latent_channels)
            network.load_state_dict(state, strict=True)
            network = network.to(dev, dtype).eval().requires_grad_(False)
        else:
            network = load_transparent_decoder(weights_path, device=dev, dtype=dtype)
        del state
        generator = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, size, size, generator=generator)
        latent = torch.randn(1, latent_channels, size // 8, size // 8, generator=generator)

        def run():
            with torch.inference_mode():
                if impl == "upstream":
                    out = upstream_augmented(network, image.to(dev, dtype), latent.to(dev, dtype))
                else:
                    strategy = "batched" if impl == "ours-batched" else "auto"
                    out = decode_transparent(network, image, latent, passes=passes, strategy=strategy)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                return out.float().cpu()

        # Touch every weight first (a small forward pass): tensors read from safetensors are
        # paged in lazily, which must not count as decode memory.
        with torch.inference_mode():
            network(torch.rand(1, 3, 64, 64).to(dev, dtype),
                    torch.randn(1, latent_channels, 8, 8).to(dev, dtype))
        # Then a cold decode for peak working memory: peak RSS during it minus RSS before it
        # (the weights are already resident; tracemalloc would not see torch's allocations).
        # Then a warm decode for time, so one-off kernel set-up does not count.
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _reset_peak_rss()
        rss_before = _rss_bytes("VmRSS")
        start = time.perf_counter()
        out = run()
        cold_seconds = time.perf_counter() - start
        peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
                else _rss_bytes("VmHWM") - rss_before)
        start = time.perf_counter()
        out = run()
        seconds = min(cold_seconds, time.perf_counter() - start)
        queue.put({"seconds": seconds, "peak_bytes": int(peak), "alpha_mean": float(out[:, 0].mean()),
                   "checksum": float(out.double().sum())})
    except Exception as error:  # report to the parent instead of hanging it
        queue.put({"error": f"{type(error).__name__}: {error}"})


def measure(impl, size, weights_path, args, passes=8):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(impl, size, weights_path, args.device, args.dtype,
                                               args.threads, queue, args.latent_channels, passes))
    process.start()
    result = queue.get()
    process.join()
    if "error" in result:
        raise RuntimeError(f"{impl} at {size}: {result['error']}")
    return result


def tta_quality(seeds=3):
    """Alpha difference of 1/2/4 passes to 8 passes, random weights (no real weights here)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    print("TTA subsets vs 8 passes, RANDOM weights (not real decoder quality), 128x192 input:")
    rel = {p: [] for p in (1, 2, 4)}
    for seed in range(seeds):
        network = load_transparent_decoder(random_network_state(seed))
        generator = torch.Generator().manual_seed(seed)
        image = F.interpolate(torch.rand(1, 3, 8, 12, generator=generator), size=(128, 192),
                              mode="bilinear", align_corners=False)
        latent = torch.randn(1, 4, 16, 24, generator=generator)
        with torch.inference_mode():
            single = {o: unorient(network(orient(image, o), orient(latent, o)).clamp(0, 1), o)
                      for o in UPSTREAM_ORIENTATIONS}
        eight = merge_passes(torch.stack([single[o] for o in UPSTREAM_ORIENTATIONS]))
        errors = {}
        for passes in (1, 2, 4):
            merged = merge_passes(torch.stack([single[o] for o in PASS_ORIENTATIONS[passes]]))
            errors[passes] = float((merged[:, 0] - eight[:, 0]).abs().mean())
        for passes in (1, 2, 4):
            rel[passes].append(errors[passes] / errors[1])
        print(f"  seed {seed}: mean |alpha - alpha_8| = "
              + ", ".join(f"{p} pass(es) {errors[p]:.4f}" for p in (1, 2, 4)))
    for passes in (1, 2, 4):
        print(f"  {passes} pass(es): relative to 1 pass {min(rel[passes]):.2f}-{max(rel[passes]):.2f},"
              f" cost {passes}/8 of 8 passes")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=2, help="child runs per implementation and size")
    parser.add_argument("--impls", nargs="+", default=["upstream", "ours"],
                        choices=["upstream", "ours", "ours-batched"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--tta-quality", action="store_true", help="only print the 1/2/4-pass study")
    parser.add_argument("--latent-channels", type=int, default=4, choices=[4, 16],
                        help="4: SD1.5/SDXL decoder; 16: Flux decoder")
    parser.add_argument("--passes", type=int, nargs="+", default=[8], choices=[1, 2, 4, 8],
                        help="passes of our decode (the reference always runs its 8)")
    args = parser.parse_args(argv)

    if args.tta_quality:
        tta_quality()
        return
    try:
        import diffusers  # noqa: F401
    except ImportError:
        sys.exit("diffusers is needed for the upstream reference: pip install diffusers")

    threads = args.threads or torch.get_num_threads()
    print(f"transparent decode ({args.latent_channels} latent channels), random weights, device "
          f"{args.device}, {args.dtype}, "
          f"{threads} torch thread(s), {os.cpu_count()} CPU(s); best of {args.repeats} run(s)",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        import safetensors.torch

        weights_path = os.path.join(tmp, "vae_transparent_decoder.safetensors")
        safetensors.torch.save_file(random_network_state(0, args.latent_channels), weights_path)
        rows = []
        for size in args.sizes:
            labels = [(impl, p) for impl in args.impls for p in ([8] if impl == "upstream" else args.passes)]
            runs = {(f"{impl}/{p}" if impl != "upstream" and args.passes != [8] else impl): [] for impl, p in labels}
            for repeat in range(args.repeats):
                for (impl, passes), label in zip(labels, list(runs)):
                    result = measure(impl, size, weights_path, args, passes)
                    impl = label
                    runs[impl].append(result)
                    print(f"  {size}x{size} {impl:>12} run {repeat + 1}: {result['seconds']:.2f} s, "
                          f"peak {result['peak_bytes'] / 2**20:.0f} MiB", flush=True)
            best = {impl: min(r, key=lambda x: x["seconds"]) for impl, r in runs.items()}
            if "upstream" in best:
                for impl in best:
                    if impl.endswith(("/1", "/2", "/4")):
                        continue  # fewer passes differ from the 8-pass median by design
                    if abs(best[impl]["checksum"] - best["upstream"]["checksum"]) > 1e-3 * size * size:
                        print(f"WARNING: {impl} output differs from upstream at {size}")
            for impl, result in best.items():
                peak = max(r["peak_bytes"] for r in runs[impl])
                ratio = (best["upstream"]["seconds"] / result["seconds"]) if "upstream" in best else float("nan")
                rows.append((size, impl, result["seconds"], ratio, peak))
    print(f"{'size':>9} {'implementation':>14} {'seconds':>9} {'speed-up vs upstream':>21} {'peak memory':>12}")
    for size, impl, seconds, ratio, peak in rows:
        print(f"{size:>4}x{size:<4} {impl:>14} {seconds:>9.2f} {ratio:>20.2f}x {peak / 2**20:>9.0f} MiB")


if __name__ == "__main__":
    main()
