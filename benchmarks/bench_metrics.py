"""Benchmark: the five matting errors of one 1024 x 1024 pair (target: all five under 0.5 s).

The pair is a synthetic portrait (``pipeline.synthetic.make_portrait(0, 1024)``): its
ground-truth alpha against its Layer-Diffusion-like damaged alpha, with a 10 px band trimap
from ``base.trimap.trimap_from_alpha``. Timed, each as the median of ``--runs`` runs:

* ours, one measure at a time (``sad_error`` ... ``connectivity_error``), then all five at once
  with ``evaluate_pair`` (the conversions are shared) for the ``dim`` and ``whole`` protocols;
* the baseline, measured in the same run: a straightforward SciPy transcription of the MATLAB
  code (``ndimage.convolve`` with the full 9x9 kernel in both directions, ``ndimage.label``
  per threshold, ``bwdist``-like distance maps as the MATLAB loop computes them although it
  never uses them), which is what common Python ports do.

Run from the repository root::

    .venv/bin/python benchmarks/bench_metrics.py [--size 1024] [--runs 5]
"""
from __future__ import annotations

import argparse

import numpy as np
from benchtools import median_seconds
from scipy import ndimage

from comfyui_ld_portrait.evaluation import evaluate_pair, metrics
from comfyui_ld_portrait.pipeline.synthetic import make_portrait
from comfyui_ld_portrait.base.trimap import trimap_from_alpha


def _baseline_all(pred, truth, trimap):
    """Straightforward SciPy transcription of the MATLAB code (the comparison point)."""
    region = trimap == 128
    sad = np.abs(pred - truth)[region].sum() / 1000
    mse = np.square(pred - truth)[region].mean()
    mad = np.abs(pred - truth)[region].mean()
    smooth, derivative = metrics.gaussian_gradient_kernel()
    kernel = np.outer(smooth, derivative)

    def amplitude(matte):
        matte = metrics.mat2gray(matte)
        gx = ndimage.convolve(matte, kernel, mode="nearest")
        gy = ndimage.convolve(matte, kernel.T, mode="nearest")
        return np.sqrt(gx ** 2 + gy ** 2)

    grad = np.square(amplitude(pred) - amplitude(truth))[region].sum() / 1000
    levels = np.full(pred.shape, -1.0)
    for index in range(1, 11):
        threshold = index / 10
        labels, count = ndimage.label((pred >= threshold) & (truth >= threshold))
        omega = np.zeros(pred.shape, bool)
        if count:
            sizes = np.bincount(labels.ravel())[1:]
            omega = labels == (int(np.argmax(sizes)) + 1)
        levels[(levels == -1) & ~omega] = (index - 1) / 10
        ndimage.distance_transform_edt(~omega)  # computed (and unused) by the MATLAB loop
    levels[levels == -1] = 1

    def phi(matte):
        difference = matte - levels
        return 1 - difference * (difference >= 0.15)

    conn = np.abs(phi(pred) - phi(truth))[region].sum() / 1000
    return sad, mse, mad, grad, conn


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    portrait = make_portrait(0, args.size)
    truth, pred = portrait.alpha_true, portrait.alpha_artifacts
    trimap = trimap_from_alpha(truth, 10)
    unknown = int(np.count_nonzero(trimap == 128))
    print(f"pair: synthetic portrait {args.size}x{args.size}, damaged vs truth; trimap band 10 px "
          f"({unknown} unknown px, {unknown / truth.size:.1%}); median of {args.runs} runs")

    single = [("SAD", metrics.sad_error), ("MSE", metrics.mse_error), ("MAD", metrics.mad_error),
              ("Grad", metrics.gradient_error), ("Conn", metrics.connectivity_error)]
    total = 0.0
    for label, function in single:
        seconds, value = median_seconds(lambda f=function: f(pred, truth, trimap), args.runs)
        total += seconds
        print(f"  {label:5} {seconds * 1000:8.1f} ms   value {value:.6g}")
    print(f"  sum of the five separate calls: {total * 1000:.1f} ms")

    ours, errors = median_seconds(lambda: evaluate_pair(pred, truth, trimap), args.runs)
    whole, _ = median_seconds(lambda: evaluate_pair(pred, truth, protocol="whole"), args.runs)
    base, reference = median_seconds(
        lambda: _baseline_all(pred.astype(np.float64), truth.astype(np.float64), trimap),
        args.runs)
    print(f"evaluate_pair (dim, all five):   {ours * 1000:8.1f} ms   "
          f"{'under' if ours < 0.5 else 'OVER'} the 0.5 s target")
    print(f"evaluate_pair (whole, all five): {whole * 1000:8.1f} ms")
    print(f"baseline SciPy transcription:    {base * 1000:8.1f} ms   "
          f"ratio baseline / ours = {base / ours:.1f}x")
    ours_values = np.array([errors.sad, errors.mse, errors.mad, errors.grad, errors.conn])
    deviation = np.max(np.abs(ours_values - np.array(reference)) / np.abs(np.array(reference)))
    print(f"largest relative difference ours vs baseline values: {deviation:.1e}")


if __name__ == "__main__":
    main()
