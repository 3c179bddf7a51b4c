"""``ld-portrait demo``: synthetic portraits -> the refine pipeline -> a dataset and a contact
sheet, with no model and no input of the user's.

:func:`run_demo` runs four steps, each its own function: check the settings (a re-run into
the same folder resumes, other settings are refused), synthesise the inputs, refine them with
:func:`.folder.refine_folder` (exactly what ``ld-portrait refine`` does), then measure the
result against the synthetic ground truth and draw the contact sheet.

Memory does not grow with ``count``: the true alphas go to ``OUTPUT_DIR/truth/`` as they are
made (not kept), each portrait is measured and drawn on the sheet at cell size one at a time,
its errors are appended to ``OUTPUT_DIR/truth_errors.jsonl`` with only running sums kept, and
the sheet shows at most :data:`..dataset.sheet.MAX_SHEET_ROWS` portraits (it says when others
were left off).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset import DatasetError, load_sample
from ..dataset.imagefiles import read_gray, read_rgba, write_bytes_atomic, write_png_atomic
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
    refined (each portrait's own figures are in ``truth_errors``, one JSON line each).
    ``sheet_rows``: portraits drawn on the contact sheet; ``sheet_left_off``: refined portraits
    not drawn because the sheet was full. ``elapsed_s`` is the whole demo (synthesis,
    refinement, sheet).
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
    truth_dir: str = ""
    truth_errors: str = ""
    sheet_rows: int = 0
    sheet_left_off: int = 0
    elapsed_s: float = 0.0

    def to_text(self) -> str:
        lines = [self.run.to_text(elapsed_s=self.elapsed_s)]
        if self.sad_raw is not None:
            lines.append(
                f"against the synthetic ground truth (mean per portrait): SAD "
                f"{_significant(self.sad_raw)}k -> {_significant(self.sad_refined)}k, MSE "
                f"{_significant(self.mse_raw)} -> {_significant(self.mse_refined)}")
        lines += [f"inputs (RGBA):  {self.input_dir}"]
        if self.truth_errors:
            lines.append(f"per portrait:   {self.truth_errors}")
        lines.append(f"contact sheet:  {self.contact_sheet}")
        if self.sheet_left_off:
            total = self.sheet_rows + self.sheet_left_off
            lines.append(f"  shows the first {self.sheet_rows} of {total} portraits (at most "
                         f"{self.sheet_rows} rows, so that memory does not grow with the run); "
                         "`ld-portrait dataset sheet` draws any others")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"run": self.run.to_json(), "contact_sheet": self.contact_sheet,
                "input_dir": self.input_dir, "dataset_dir": self.dataset_dir,
                "sad_raw": self.sad_raw, "sad_refined": self.sad_refined,
                "mse_raw": self.mse_raw, "mse_refined": self.mse_refined,
                "truth_dir": self.truth_dir, "truth_errors": self.truth_errors,
                "sheet_rows": self.sheet_rows, "sheet_left_off": self.sheet_left_off,
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


def _synthesise_inputs(input_dir: Path, truth_dir: Path, count: int, size: int, seed: int,
                       should_stop) -> tuple[list[str], dict]:
    """Write ``portrait_NNN.png`` (RGBA with artifacts) and its true alpha
    ``truth_dir/portrait_NNN.png`` (16-bit, so the errors measured from it are those of the
    float truth to within 1e-5 per pixel); return the file names written and file name ->
    extra meta (seed, attributes, artifact pixel counts). No picture is kept in memory."""
    from .synthetic import make_portrait

    names, extra = [], {}
    for index in range(count):
        if should_stop is not None and should_stop():
            break
        portrait = make_portrait(seed + index, size)
        name = f"portrait_{index:03d}.png"
        path = input_dir / name
        if not path.is_file():  # same settings give the same image: keep it on a re-run
            rgba = np.concatenate([portrait.rgb, portrait.alpha_artifacts[..., None]], axis=2)
            write_png_atomic(path, rgba)
        if not (truth_dir / name).is_file():
            write_png_atomic(truth_dir / name, portrait.alpha_true, bits=16)
        names.append(name)
        extra[name] = {
            "seed": int(portrait.seed),
            "attributes": {"pose": portrait.pose, "hair_style": portrait.hair_style},
            "synthetic": {"generator": "pipeline.synthetic.make_portrait",
                          "artifact_pixels": {family: int(np.count_nonzero(mask)) for family, mask
                                              in sorted(portrait.artifact_masks.items())}}}
    return names, extra


@dataclasses.dataclass
class _ErrorTotals:
    """Running sums of the per-portrait errors (their means are the summary's figures)."""

    count: int = 0
    sad_raw: float = 0.0
    sad_refined: float = 0.0
    mse_raw: float = 0.0
    mse_refined: float = 0.0

    def add(self, record: dict) -> None:
        self.count += 1
        for key in ("sad_raw", "sad_refined", "mse_raw", "mse_refined"):
            setattr(self, key, getattr(self, key) + record[key])

    def mean(self, key: str) -> float:
        return getattr(self, key) / self.count


class _JsonLines:
    """``path`` written one JSON line at a time through a hidden temporary file in the same
    folder, renamed into place by :meth:`close` (an interrupted demo leaves the old file)."""

    def __init__(self, path: Path):
        self.path = path
        handle, self._partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                                 dir=path.parent)
        self._file = os.fdopen(handle, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")

    def close(self, keep: bool) -> None:
        self._file.close()
        if keep:
            os.replace(self._partial, self.path)
        else:
            os.unlink(self._partial)


def _measure_against_truth(input_dir: Path, dataset_dir: Path, truth_dir: Path, names: list,
                           refine_params: dict, sheet, per_portrait: _JsonLines) -> _ErrorTotals:
    """Errors of the raw and refined alphas against the truth, one portrait at a time: each
    portrait's errors go to ``per_portrait`` and into the returned sums, and its row is drawn
    on ``sheet`` (a :class:`..dataset.sheet.ContactSheet`) at once, so nothing full-size
    outlives its portrait.

    The dataset does not store the pixels refinement left uncertain; the sheet row gets them by
    refining the raw alpha again with the run's parameters (deterministic, so the same mask),
    only for portraits the sheet still has room for.
    """
    from ..dataset.sheet import SheetRow
    from ..refine.connectivity import refine_alpha

    totals = _ErrorTotals()
    for name in names:
        sample_id = sample_id_for(name)
        try:
            sample = load_sample(dataset_dir, sample_id)
        except KeyError:
            continue  # interrupted before this one
        if sample.fg is None:
            continue  # rejected without images (keep_rejected off)
        rgb, raw = read_rgba(input_dir / name)
        truth = read_gray(truth_dir / name)
        verdict = sample.meta.get("verdict", {})
        stats = sample.meta.get("refinement", {})
        kept = bool(verdict.get("keep"))
        record = {"sample_id": sample_id, "file": name, "kept": kept,
                  "sad_raw": float(np.abs(raw - truth).sum() / 1e3),
                  "sad_refined": float(np.abs(sample.alpha - truth).sum() / 1e3),
                  "mse_raw": float(np.mean((raw - truth) ** 2)),
                  "mse_refined": float(np.mean((sample.alpha - truth) ** 2))}
        per_portrait.write(record)
        totals.add(record)
        del truth
        if not sheet.has_room:
            sheet.skip()
            continue
        note = "kept" if kept else "rejected: " + ", ".join(verdict.get("reasons", []))
        note += f"   corrected {stats.get('changed_pixels', 0)} px"
        note += f", uncertain {stats.get('uncertain_pixels', 0)} px"
        uncertain = refine_alpha(raw, **refine_params).uncertain
        sheet.add(SheetRow(label=sample_id, rgb=rgb, raw_alpha=raw, fg=sample.fg,
                           alpha=sample.alpha, note=note, kept=kept, uncertain=uncertain))
    return totals


def run_demo(output_dir, *, count: int = 8, size: int = 512, seed: int = 0,
             options: RefineOptions | None = None,
             progress: Callable[[ProgressEvent], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             sheet_rows: int | None = None) -> DemoSummary:
    """Synthesise ``count`` portraits, refine them into a dataset and draw a contact sheet.

    Writes ``output_dir/input/portrait_NNN.png`` (RGBA with Layer-Diffusion-like artifacts),
    ``output_dir/dataset/`` (the same path as :func:`.folder.refine_folder`, with error maps
    and rejected samples kept so every portrait appears on the sheet) and
    ``output_dir/contact_sheet.png``, with the true alphas in ``output_dir/truth/`` (16-bit)
    and each portrait's errors against them in ``output_dir/truth_errors.jsonl``. Peak memory
    does not depend on ``count``.

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
    sheet_rows : int, optional
        Most portraits drawn on the contact sheet (default
        :data:`..dataset.sheet.MAX_SHEET_ROWS`); the sheet and the summary say how many were
        left off.
    """
    from ..dataset.sheet import MAX_SHEET_ROWS, ContactSheet

    started = time.monotonic()
    _check_arguments(count, size, seed)
    options = options or RefineOptions(error_maps=True, keep_rejected=True)
    output_dir = Path(output_dir).expanduser()
    input_dir, dataset_dir = output_dir / "input", output_dir / "dataset"
    truth_dir = output_dir / "truth"
    # Made first, so that a bad sheet_rows is refused before anything is written.
    sheet = ContactSheet(cell=min(256, size),
                         max_rows=MAX_SHEET_ROWS if sheet_rows is None else sheet_rows)
    _prepare_folder(output_dir, input_dir, size, seed)
    names, extra = _synthesise_inputs(input_dir, truth_dir, count, size, seed, should_stop)

    if len(names) < count:  # stopped while synthesising: refine nothing, say so
        run = RunSummary(input_dir=str(input_dir), output_dir=str(dataset_dir), interrupted=True)
    else:
        run = refine_folder(input_dir, dataset_dir, options, progress=progress,
                            should_stop=should_stop, extra_meta=extra)
    del extra

    errors_path = output_dir / "truth_errors.jsonl"
    per_portrait = _JsonLines(errors_path)
    try:
        totals = _measure_against_truth(input_dir, dataset_dir, truth_dir, names,
                                        dict(options.refine_params), sheet, per_portrait)
    except BaseException:
        per_portrait.close(keep=False)
        raise
    per_portrait.close(keep=totals.count > 0)
    sheet_path = output_dir / "contact_sheet.png"
    if sheet.shown:
        write_png_atomic(sheet_path, sheet.finish())
    summary = DemoSummary(output_dir=str(output_dir), input_dir=str(input_dir),
                          dataset_dir=str(dataset_dir),
                          contact_sheet=str(sheet_path) if sheet.shown else
                          "(none: nothing refined)", run=run, truth_dir=str(truth_dir),
                          sheet_rows=sheet.shown, sheet_left_off=sheet.skipped)
    if totals.count:
        summary.truth_errors = str(errors_path)
        summary.sad_raw = totals.mean("sad_raw")
        summary.sad_refined = totals.mean("sad_refined")
        summary.mse_raw = totals.mean("mse_raw")
        summary.mse_refined = totals.mean("mse_refined")
    summary.elapsed_s = time.monotonic() - started
    return summary
