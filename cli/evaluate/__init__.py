"""``ld-portrait evaluate PRED_DIR GT_DIR``: score predicted mattes as matting papers do.

Files are paired by name; each pair gets SAD, MSE, MAD, gradient and connectivity error
(:mod:`...evaluation`), printed as mean and median per measure, optionally written per image
to a CSV file (``--csv``) or printed as JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import textwrap
from pathlib import Path

from ..common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ProgressBar, StopFlag,
                      add_image_limit_options, add_workers_option, image_limit_kwargs,
                      run_error, usage_error, workers_from_args, write_error)

__all__ = ["register", "run_evaluate"]

_LABELS = {"sad": "SAD", "mse": "MSE", "mad": "MAD", "grad": "Grad", "conn": "Conn"}


def register(commands) -> None:
    """Add ``evaluate`` to the ``ld-portrait`` sub-commands."""
    from ...evaluation.names import PROTOCOLS

    protocols = "\n".join(f"  {name:6} {text}" for name, text in PROTOCOLS.items())
    parser = commands.add_parser(
        "evaluate", help="score predicted alpha mattes against ground truth (SAD, MSE, MAD, "
                         "Grad, Conn)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Pair the PNG mattes of PRED_DIR and GT_DIR by file name and measure each "
            "prediction against its truth: SAD, MSE, MAD, gradient and connectivity error as "
            "the Adobe Deep Image Matting MATLAB code defines them (checked against it under "
            "Octave). Prints the mean and median of each measure. Mattes are 8- or 16-bit "
            "grayscale PNGs (RGB with equal channels is accepted); trimaps use 0/128/255.",
            width=78),
        epilog="protocols:\n" + protocols + "\n\n" + textwrap.fill(
            "Exit codes: 0 every pair evaluated; 1 unpaired names, or a pair that could not be "
            "used (listed; the figures then cover only the others); 2 bad arguments or a "
            "missing folder; 130 interrupted.", width=78))
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted alpha PNGs")
    parser.add_argument("gt_dir", metavar="GT_DIR", help="folder of ground-truth alpha PNGs")
    parser.add_argument("--trimap", metavar="DIR",
                        help="folder of 0/128/255 trimap PNGs (same names): measure only their "
                             "unknown region (dim protocol); without it every pixel counts")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="dim",
                        help="dim (default): Adobe DIM MATLAB definitions; whole: P3M-500 / "
                             "AM-2K whole-image definitions (no trimap)")
    parser.add_argument("--csv", metavar="PATH",
                        help="write one row per image: name,sad,mse,mad,grad,conn")
    parser.add_argument("--json", action="store_true",
                        help="print the summary and every image's figures as JSON")
    add_image_limit_options(parser)
    add_workers_option(parser, "pairs")
    parser.set_defaults(handler=run_evaluate)


def _clean(value):
    """JSON has no NaN: an empty region's mean becomes null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _region_text(args) -> str:
    if args.protocol == "whole":
        return "whole image, P3M-500 / AM-2K definitions (SAD, Conn / 1000; Grad / 10)"
    if args.trimap:
        return f"unknown region of the trimaps in {args.trimap} (SAD, Grad, Conn / 1000)"
    return "whole image, DIM definitions (SAD, Grad, Conn / 1000)"


def _print_table(summary: dict, count: int, args, stdout) -> None:
    stdout.write(f"protocol {args.protocol}: {_region_text(args)}\n")
    stdout.write(f"{count} image(s) evaluated\n")
    stdout.write(f"{'measure':8} {'mean':>12} {'median':>12}\n")
    for metric, figures in summary.items():
        note = "" if figures["count"] == count else \
            f"  ({count - figures['count']} image(s) without unknown pixels left out)"
        stdout.write(f"{_LABELS[metric]:8} {figures['mean']:12.6g} {figures['median']:12.6g}"
                     f"{note}\n")


def _check_arguments(args, stderr) -> int | None:
    if args.protocol == "whole" and args.trimap:
        return usage_error(stderr, "--protocol whole measures every pixel and takes no "
                                   "--trimap; use --protocol dim for the unknown region.")
    for option, folder in (("PRED_DIR", args.pred_dir), ("GT_DIR", args.gt_dir),
                           ("--trimap", args.trimap)):
        if folder is not None and not Path(folder).is_dir():
            return usage_error(stderr, f"{option} {folder}: no such folder.")
    if args.csv:
        problem = _csv_target_problem(Path(args.csv))
        if problem:
            return usage_error(stderr, f"--csv {args.csv}: {problem}")
    return None


def _csv_target_problem(path: Path) -> str | None:
    """Why ``--csv PATH`` cannot be written, found before any pair is evaluated (a missing
    folder is not created: a typo must not leave folders behind), or None."""
    from ...dataset.safeio import create_temporary

    path = path.expanduser()
    if path.is_dir():
        return "is a folder; give a file path."
    folder = path.parent
    if not folder.is_dir():
        return (f"the folder {folder} does not exist (or is not a folder); create it first or "
                "give a path in an existing folder.")
    if path.exists() and not os.access(path, os.W_OK):
        return "exists and may not be written by this user."
    try:  # the real test: can a file be created there (permissions, read-only file system)?
        descriptor, probe = create_temporary(folder, ".csv")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        return f"cannot write in {folder}: {error.strerror or error}."
    return None


def _failure_line(name: str, reason: str) -> str:
    """``name: reason``, or the reason alone when it starts with the file already (its name or
    a path to it), so that no line says ``a0.png: a0.png: ...``."""
    head = reason.split(": ", 1)[0]
    return reason if head == name or Path(head).name == name else f"{name}: {reason}"


def run_evaluate(args, stdout, stderr) -> int:
    """Handler of ``ld-portrait evaluate``."""
    from ...dataset.safeio import write_file_atomic
    from .pairs import EvaluationInputError, csv_text, evaluate_pairs, pair_files, summarise

    problem = _check_arguments(args, stderr)
    if problem is not None:
        return problem
    try:
        pairs = pair_files(args.pred_dir, args.gt_dir, args.trimap)
    except EvaluationInputError as error:
        return run_error(stderr, error)
    bar = ProgressBar(len(pairs), stream=stderr, label="evaluate")
    try:
        with StopFlag(stderr) as stop:
            run = evaluate_pairs(pairs, args.protocol, limits=image_limit_kwargs(args),
                                 progress=bar.update, should_stop=stop,
                                 workers=workers_from_args(args))
    finally:  # end the bar's line whatever happens, so an error starts on a line of its own
        bar.finish()
    for name, reason in run.failures:
        stderr.write(f"ld-portrait: {_failure_line(name, reason)}\n")

    summary = summarise(run.rows)
    if args.csv:
        try:
            # Into the folder checked above: never creates one.
            write_file_atomic(Path(args.csv).expanduser(), csv_text(run.rows).encode("utf-8"))
        except OSError as error:
            return write_error(stderr, args.csv, error)
    if args.json:
        report = {"protocol": args.protocol, "region": _region_text(args),
                  "evaluated": len(run.rows), "failed": len(run.failures),
                  "interrupted": run.interrupted,
                  "summary": {metric: {key: _clean(value) for key, value in figures.items()}
                              for metric, figures in summary.items()},
                  "images": [{key: _clean(value) for key, value in row.items()}
                             for row in run.rows],
                  "failures": [{"name": name, "error": reason} for name, reason in run.failures]}
        stdout.write(json.dumps(report, indent=2) + "\n")
    elif run.rows:
        _print_table(summary, len(run.rows), args, stdout)
    if run.failures:
        stderr.write(f"ld-portrait: {len(run.failures)} of {len(pairs)} pair(s) could not be "
                     "evaluated (listed above); the figures cover only the others.\n")
    if run.interrupted:
        stderr.write(f"ld-portrait: interrupted after {len(run.rows) + len(run.failures)} of "
                     f"{len(pairs)} pair(s); the figures cover only those.\n")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.failures else EXIT_OK
