"""``ld-portrait demo``: synthetic portraits -> the refine pipeline -> a dataset and a contact
sheet, with no model and no input of the user's.

:func:`run_demo` runs four steps, each its own function: check the settings (a re-run into
the same folder resumes, other settings are refused), synthesise the inputs, refine them with
:func:`.folder.refine_folder` (exactly what ``ld-portrait refine`` does), then measure the
result against the synthetic ground truth and draw the contact sheet.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset import DatasetError, load_sample
from ..dataset.imagefiles import read_rgba, write_bytes_atomic, write_png_atomic
from .folder import refine_folder
from .ids import sample_id_for
from .portrait import RefineOptions
from .summary import ProgressEvent, RunSummary

__all__ = ["DemoSummary", "run_demo"]


def _significant(value: float, digits: int = 3) -> str:
    """``0.000482`` -> ``'0.000482'``, ``3.1e-06`` -> ``'3.1e-06'``: never rounds to zero."""
    return f"{value:.{digits}g}"


@dataclasses.dataclass
class DemoSummary:
    """What :func:`run_demo` wrote, plus refinement quality against the synthetic truth.

    ``sad_raw`` / ``sad_refined``: mean sum of absolute alpha differences to the ground truth
    per portrait, in thousands of pixels (the matting literature's SAD unit), before and after
    refinement; ``mse_*`` the mean squared error per portrait; ``None`` when no portrait was
    refined. ``elapsed_s`` is the whole demo (synthesis, refinement, sheet).
    """

    output_dir: str
    input_dir: str
    dataset_dir: str
    contact_sheet: str
    run: RunSummary
    sad_raw: float | None = None
    sad_refined: float | None = None
    mse_raw: float | None = None
    mse_refined: float | None = None
    elapsed_s: float = 0.0

    def to_text(self) -> str:
        lines = [self.run.to_text(elapsed_s=self.elapsed_s)]
        if self.sad_raw is not None:
            lines.append(
                f"against the synthetic ground truth (mean per portrait): SAD "
                f"{_significant(self.sad_raw)}k -> {_significant(self.sad_refined)}k, MSE "
                f"{_significant(self.mse_raw)} -> {_significant(self.mse_refined)}")
        lines += [f"inputs (RGBA):  {self.input_dir}",
                  f"contact sheet:  {self.contact_sheet}"]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"run": self.run.to_json(), "contact_sheet": self.contact_sheet,
                "input_dir": self.input_dir, "dataset_dir": self.dataset_dir,
                "sad_raw": self.sad_raw, "sad_refined": self.sad_refined,
                "mse_raw": self.mse_raw, "mse_refined": self.mse_refined,
                "elapsed_s": self.elapsed_s}


def _check_arguments(count, size, seed) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise ValueError(f"count must be a whole number in 1..1000, got {count!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 4096:
        raise ValueError(f"size must be a whole number in 64..4096, got {size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}.")


def _prepare_folder(output_dir: Path, input_dir: Path, size: int, seed: int) -> None:
    """Create the input folder and record the settings; refuse other settings of an earlier
    demo in the same folder (complete samples are skipped, so the dataset would mix them)."""
    try:
        input_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"cannot create {input_dir}: {error.strerror or error}. Choose a "
                           "folder you can write to.") from error
    settings_path = output_dir / "demo.json"
    settings = {"size": size, "seed": seed}
    if settings_path.is_file():
        try:
            previous = json.loads(settings_path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise ValueError(
                f"{settings_path} (the settings of an earlier demo in this folder) cannot be "
                f"read: {reason}. Choose another OUTPUT_DIR, or delete {output_dir} to start "
                "the demo afresh.") from error
        if previous != settings:
            raise ValueError(
                f"{output_dir} already holds a demo made with {previous}; this run asks for "
                f"{settings}. Choose another OUTPUT_DIR or delete that one.")
    else:
        write_bytes_atomic(settings_path, json.dumps(settings).encode())


def _synthesise_inputs(input_dir: Path, count: int, size: int, seed: int, should_stop):
    """Write ``portrait_NNN.png`` (RGBA with artifacts); return file name -> true alpha and
    file name -> extra meta (seed, attributes, artifact pixel counts)."""
    from .synthetic import make_portrait

    truths, extra = {}, {}
    for index in range(count):
        if should_stop is not None and should_stop():
            break
        portrait = make_portrait(seed + index, size)
        name = f"portrait_{index:03d}.png"
        rgba = np.concatenate([portrait.rgb, portrait.alpha_artifacts[..., None]], axis=2)
        path = input_dir / name
        if not path.is_file():  # same settings give the same image: keep it on a re-run
            write_png_atomic(path, rgba)
        truths[name] = portrait.alpha_true
        extra[name] = {
            "seed": int(portrait.seed),
            "attributes": {"pose": portrait.pose, "hair_style": portrait.hair_style},
            "synthetic": {"generator": "pipeline.synthetic.make_portrait",
                          "artifact_pixels": {family: int(np.count_nonzero(mask)) for family, mask
                                              in sorted(portrait.artifact_masks.items())}}}
    return truths, extra


@dataclasses.dataclass
class _Measured:
    rows: list
    sad_raw: list
    sad_refined: list
    mse_raw: list
    mse_refined: list


def _measure_against_truth(input_dir: Path, dataset_dir: Path, truths: dict,
                           refine_params: dict) -> _Measured:
    """Errors of the raw and refined alphas against the truth, and one sheet row per sample.

    The dataset does not store the pixels refinement left uncertain; the sheet row gets them by
    refining the raw alpha again with the run's parameters (deterministic, so the same mask).
    """
    from ..dataset.sheet import SheetRow
    from ..refine.connectivity import refine_alpha

    measured = _Measured([], [], [], [], [])
    for name in sorted(truths):
        sample_id = sample_id_for(name)
        try:
            sample = load_sample(dataset_dir, sample_id)
        except KeyError:
            continue  # interrupted before this one
        if sample.fg is None:
            continue  # rejected without images (keep_rejected off)
        rgb, raw = read_rgba(input_dir / name)
        truth = truths[name]
        measured.sad_raw.append(np.abs(raw - truth).sum() / 1e3)
        measured.sad_refined.append(np.abs(sample.alpha - truth).sum() / 1e3)
        measured.mse_raw.append(float(np.mean((raw - truth) ** 2)))
        measured.mse_refined.append(float(np.mean((sample.alpha - truth) ** 2)))
        verdict = sample.meta.get("verdict", {})
        stats = sample.meta.get("refinement", {})
        kept = bool(verdict.get("keep"))
        note = "kept" if kept else "rejected: " + ", ".join(verdict.get("reasons", []))
        note += f"   corrected {stats.get('changed_pixels', 0)} px"
        note += f", uncertain {stats.get('uncertain_pixels', 0)} px"
        uncertain = refine_alpha(raw, **refine_params).uncertain
        measured.rows.append(SheetRow(label=sample_id, rgb=rgb, raw_alpha=raw, fg=sample.fg,
                                      alpha=sample.alpha, note=note, kept=kept, uncertain=uncertain))
    return measured


def run_demo(output_dir, *, count: int = 8, size: int = 512, seed: int = 0,
             options: RefineOptions | None = None,
             progress: Callable[[ProgressEvent], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> DemoSummary:
    """Synthesise ``count`` portraits, refine them into a dataset and draw a contact sheet.

    Writes ``output_dir/input/portrait_NNN.png`` (RGBA with Layer-Diffusion-like artifacts),
    ``output_dir/dataset/`` (the same path as :func:`.folder.refine_folder`, with error maps
    and rejected samples kept so every portrait appears on the sheet) and
    ``output_dir/contact_sheet.png``.

    Parameters
    ----------
    output_dir : str or Path
    count : int
        Number of portraits (1..1000).
    size : int
        Side of each square portrait in pixels (64..4096).
    seed : int
        Portrait ``i`` uses seed ``seed + i``; the same arguments give the same images.
    options : RefineOptions, optional
        Defaults to error maps and kept rejects.
    """
    from ..dataset.sheet import contact_sheet

    started = time.monotonic()
    _check_arguments(count, size, seed)
    options = options or RefineOptions(error_maps=True, keep_rejected=True)
    output_dir = Path(output_dir).expanduser()
    input_dir, dataset_dir = output_dir / "input", output_dir / "dataset"
    _prepare_folder(output_dir, input_dir, size, seed)
    truths, extra = _synthesise_inputs(input_dir, count, size, seed, should_stop)

    if len(truths) < count:  # stopped while synthesising: refine nothing, say so
        run = RunSummary(input_dir=str(input_dir), output_dir=str(dataset_dir), interrupted=True)
    else:
        run = refine_folder(input_dir, dataset_dir, options, progress=progress,
                            should_stop=should_stop, extra_meta=extra)

    measured = _measure_against_truth(input_dir, dataset_dir, truths, dict(options.refine_params))
    sheet_path = output_dir / "contact_sheet.png"
    if measured.rows:
        sheet = contact_sheet(measured.rows, cell=min(256, size))
        write_png_atomic(sheet_path, sheet.astype(np.float32) / np.float32(255.0))
    summary = DemoSummary(output_dir=str(output_dir), input_dir=str(input_dir),
                          dataset_dir=str(dataset_dir),
                          contact_sheet=str(sheet_path) if measured.rows else
                          "(none: nothing refined)", run=run)
    if measured.sad_raw:
        summary.sad_raw = float(np.mean(measured.sad_raw))
        summary.sad_refined = float(np.mean(measured.sad_refined))
        summary.mse_raw = float(np.mean(measured.mse_raw))
        summary.mse_refined = float(np.mean(measured.mse_refined))
    summary.elapsed_s = time.monotonic() - started
    return summary
