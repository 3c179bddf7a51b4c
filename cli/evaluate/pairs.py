"""Folders of mattes -> per-image errors: pairing by name, checked reading, the run, summaries.

The measures themselves are :mod:`...evaluation`; this module only finds, reads and checks
the files (8- or 16-bit PNG, one gray channel, or colour with identical channels and no
transparency) and collects the results.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ...dataset.imagefiles import ImageFileError, printable_name, read_gray, read_rgba, scan_pngs
from ...evaluation import METRIC_NAMES, evaluate_pair
from ...base.trimap import check_trimap_codes

__all__ = ["EvaluationInputError", "ImagePair", "EvaluationRun", "pair_files", "read_matte",
           "read_trimap", "evaluate_pairs", "summarise", "csv_text"]

#: How many unpaired names an error message lists before "... and N more".
_NAMES_SHOWN = 5
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAY_TYPES = {0}  # colour type 0: gray without alpha


class EvaluationInputError(ValueError):
    """The folders cannot be evaluated as given (the message says what to fix)."""


@dataclass(frozen=True)
class ImagePair:
    """One prediction, its truth and (optionally) its trimap, matched by file name."""

    name: str
    pred: Path
    truth: Path
    trimap: Path | None = None


@dataclass
class EvaluationRun:
    """Per-image errors (``rows``: name + the five measures), failures and whether stopped."""

    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return shown + (f" ... and {more} more" if more > 0 else "")


def _png_names(folder: Path, role: str) -> dict[str, Path]:
    try:
        files, skipped = scan_pngs(folder)
    except ImageFileError as error:
        raise EvaluationInputError(f"{role} folder {error}") from None
    if skipped:
        raise EvaluationInputError(
            f"{role} folder {folder} has *.png entries that are not files: "
            + _listing([f"{name} ({reason})" for name, reason in skipped]))
    return {path.name: path for path in files}


def pair_files(pred_dir, truth_dir, trimap_dir=None) -> list[ImagePair]:
    """Match the PNG files of the folders by file name.

    Raises
    ------
    EvaluationInputError
        A folder is missing, the truth folder holds no PNG, or a name lacks its partner (a
        prediction without truth, a truth without prediction or without trimap): averages over
        an incomplete set are not the benchmark's numbers, so nothing is evaluated.
    """
    preds = _png_names(Path(pred_dir), "prediction")
    truths = _png_names(Path(truth_dir), "truth")
    trimaps = _png_names(Path(trimap_dir), "trimap") if trimap_dir is not None else None
    if not truths:
        raise EvaluationInputError(f"truth folder {truth_dir} holds no *.png file.")
    problems = []
    missing_pred = sorted(set(truths) - set(preds))
    if missing_pred:
        problems.append(f"{len(missing_pred)} truth file(s) without a prediction in {pred_dir}: "
                        + _listing([printable_name(name) for name in missing_pred]))
    extra_pred = sorted(set(preds) - set(truths))
    if extra_pred:
        problems.append(f"{len(extra_pred)} prediction(s) without a truth file in {truth_dir}: "
                        + _listing([printable_name(name) for name in extra_pred]))
    if trimaps is not None:
        missing_trimap = sorted(set(truths) - set(trimaps))
        if missing_trimap:
            problems.append(f"{len(missing_trimap)} truth file(s) without a trimap in "
                            f"{trimap_dir}: "
                            + _listing([printable_name(name) for name in missing_trimap]))
    if problems:
        raise EvaluationInputError(
            "unpaired files (files are paired by identical name):\n  " + "\n  ".join(problems))
    return [ImagePair(name, preds[name], truths[name],
                      trimaps[name] if trimaps is not None else None) for name in sorted(truths)]


def _is_plain_gray_png(path: Path) -> bool:
    """True when the PNG header says one gray channel without alpha (colour type 0)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(26)
    except OSError:
        return False  # the reader below reports the real problem
    return (len(head) == 26 and head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR"
            and head[25] in _PNG_GRAY_TYPES)


def read_matte(path, role: str = "matte", **limits) -> np.ndarray:
    """Read a matte file as float32 ``[H, W]`` in 0..1, refusing colour and transparency.

    A gray PNG (8 or 16 bit) is read as stored. A colour PNG is accepted only when its
    R, G and B are identical and it is fully opaque (a matte saved as RGB); anything else is
    an :class:`~...dataset.imagefiles.ImageFileError` that says what is wrong.
    ``limits``: ``max_pixels`` / ``max_bytes``, checked before decoding.
    """
    path = Path(path)
    if _is_plain_gray_png(path):
        return read_gray(path, **limits)
    rgb, alpha = read_rgba(path, require_alpha=False, **limits)
    if float(alpha.min()) < 1.0:
        raise ImageFileError(
            f"{path}: the {role} has transparency (an alpha channel below 1); save the matte "
            "itself as a grayscale PNG (for an RGBA cut-out, save its alpha channel).")
    spread = float(np.max(rgb.max(axis=2) - rgb.min(axis=2)))
    if spread > 0.0:
        raise ImageFileError(
            f"{path}: the {role} is a colour image (its R, G and B differ by up to "
            f"{spread * 255:.0f}/255); an alpha matte must be grayscale, one value per pixel.")
    return np.ascontiguousarray(rgb[..., 0])


def read_trimap(path, **limits) -> np.ndarray:
    """Read a trimap file as uint8 codes 0/128/255 (refusing colour and other values)."""
    try:
        return check_trimap_codes(read_matte(path, "trimap", **limits), str(path))
    except ValueError as error:
        if isinstance(error, ImageFileError):
            raise
        raise ImageFileError(str(error)) from None


def _evaluate_one(pair: ImagePair, protocol: str, limits: dict) -> dict:
    pred = read_matte(pair.pred, "prediction", **limits)
    truth = read_matte(pair.truth, "truth", **limits)
    if pred.shape != truth.shape:
        raise ImageFileError(
            f"{pair.name}: prediction is {pred.shape[1]}x{pred.shape[0]} but truth is "
            f"{truth.shape[1]}x{truth.shape[0]} (width x height); predict at the truth's size.")
    trimap = None
    if pair.trimap is not None:
        trimap = read_trimap(pair.trimap, **limits)
        if trimap.shape != truth.shape:
            raise ImageFileError(
                f"{pair.name}: trimap is {trimap.shape[1]}x{trimap.shape[0]} but truth is "
                f"{truth.shape[1]}x{truth.shape[0]} (width x height).")
    errors = evaluate_pair(pred, truth, trimap, protocol=protocol)
    return {"name": pair.name, **errors.as_dict()}


def evaluate_pairs(pairs: list[ImagePair], protocol: str = "dim", *, limits: dict | None = None,
                   progress: Callable[[int, str, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   workers: int = 1) -> EvaluationRun:
    """Measure every pair; a pair whose files cannot be used is recorded in ``failures``.

    ``progress(done, outcome, name)`` is called after each pair (outcome ``"evaluated"`` or
    ``"failed"``); ``should_stop()`` is asked before each. ``workers`` > 1 measures pairs in
    that many processes (:mod:`...pipeline.workers`); rows, failures and progress come in
    pair order, as with one.
    """
    limits = {key: value for key, value in (limits or {}).items() if value is not None}
    run = EvaluationRun()
    if workers > 1 and len(pairs) > 1:
        _evaluate_in_workers(pairs, protocol, limits, progress, should_stop, workers, run)
        return run
    for index, pair in enumerate(pairs):
        if should_stop is not None and should_stop():
            run.interrupted = True
            break
        outcome, result = _measure(pair, protocol, limits)
        _record(run, outcome, result)
        if progress is not None:
            progress(index + 1, outcome, printable_name(pair.name))
    return run


def _measure(pair: ImagePair, protocol: str, limits: dict) -> tuple[str, object]:
    """``("evaluated", row)`` or ``("failed", (name, why))`` for one pair."""
    try:
        return "evaluated", _evaluate_one(pair, protocol, limits)
    except (ImageFileError, ValueError) as error:
        return "failed", (printable_name(pair.name), str(error))


def _record(run: EvaluationRun, outcome: str, result) -> None:
    (run.rows if outcome == "evaluated" else run.failures).append(result)


def _measure_setup(protocol: str, limits: dict) -> tuple[str, dict]:
    return protocol, limits


def _measure_in_worker(state: tuple[str, dict], pair: ImagePair) -> tuple[str, object]:
    return _measure(pair, *state)


def _evaluate_in_workers(pairs, protocol, limits, progress, should_stop, workers, run) -> None:
    """The loop of :func:`evaluate_pairs` with ``workers`` processes: pairs handed out in
    order, results taken back in order; Ctrl-C hands out no more and waits for those in
    flight, a second one stops the workers at once."""
    from ...dataset.workers import OrderedPool, WorkerTask

    task = WorkerTask(_measure_setup, (protocol, limits), _measure_in_worker)
    next_index, taken = 0, 0
    with OrderedPool(task, min(workers, len(pairs))) as pool:
        try:
            while True:
                while next_index < len(pairs) and not run.interrupted and not pool.full():
                    if should_stop is not None and should_stop():
                        run.interrupted = True
                        break
                    pool.submit(pairs[next_index])
                    next_index += 1
                if not len(pool):
                    break
                outcome, result = pool.next_result()
                _record(run, outcome, result)
                taken += 1
                if progress is not None:
                    progress(taken, outcome, printable_name(pairs[taken - 1].name))
        except KeyboardInterrupt:
            run.interrupted = True
            pool.stop_now()


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and median of each measure over ``rows``; NaN entries (empty unknown region) are
    left out, and ``count`` says how many values each figure covers."""
    summary = {}
    for metric in METRIC_NAMES:
        values = np.array([row[metric] for row in rows], np.float64)
        finite = values[np.isfinite(values)]
        summary[metric] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "median": float(np.median(finite)) if finite.size else math.nan,
            "count": int(finite.size),
        }
    return summary


def csv_text(rows: list[dict]) -> str:
    """``name,sad,mse,mad,grad,conn``, one row per image (``nan`` for an empty region)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *METRIC_NAMES])
    for row in rows:
        writer.writerow([row["name"], *(repr(float(row[metric])) for metric in METRIC_NAMES)])
    return buffer.getvalue()
