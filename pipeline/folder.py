"""Folder-level pipeline: RGBA portraits in, a matting dataset out.

This is what ``ld-portrait refine`` and ``ld-portrait demo`` run, kept here as plain functions
so that tests, nodes and other tools call exactly the same code path:

``process_portrait``  one image: refine the alpha, pad the foreground, judge the quality,
                      optionally draw the error map.
``refine_folder``     every RGBA PNG of a folder into a dataset root, resumable, with bad files
                      reported and skipped; returns a :class:`RunSummary`.
``run_demo``          synthesise portraits with Layer-Diffusion-like artifacts, refine them with
                      ``refine_folder`` and draw a contact sheet.

Order of the steps per image: refine first, then pad with the *refined* alpha. Pixels that
refinement made opaque (pinholes at specular highlights, interior speckle) keep their decoded
colour instead of being overwritten by the padding blur, and pixels it cleared (debris) get the
smooth padded colour like the rest of the background.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..dataset import (DatasetError, DatasetWriter, SampleIdError, is_disk_full, list_sample_ids,
                      load_sample, safe_id_from_filename)
from ..dataset.imagefiles import (ImageFileError, list_pngs, read_rgba, write_bytes_atomic,
                         write_png_atomic)
from ..refine.connectivity import refine_alpha
from ..refine.padding import pad_foreground
from ..refine.quality import assess_quality
from ..dataset.version import tool_version

__all__ = ["RefineOptions", "ProcessedPortrait", "process_portrait", "FileFailure",
           "ProgressEvent", "RunSummary", "refine_folder", "assign_ids", "DemoSummary",
           "run_demo", "tool_version"]

@dataclasses.dataclass(frozen=True)
class RefineOptions:
    """Options of :func:`refine_folder` (the CLI flags map one to one).

    Attributes
    ----------
    error_maps : bool
        Also write ``error_maps/<id>.png`` (the error-map panel of ``refine.errormap``).
    keep_rejected : bool
        Write the images of gate-rejected samples under ``rejected/``. Without it only their
        meta file is written there (verdict and measures for statistics, and so a re-run does
        not redo them).
    alpha_bits : {8, 16}
        Bit depth of the stored alphas.
    store_raw_alpha : bool
        Keep the alpha before refinement in ``raw_alpha/`` for audit.
    limit : int or None
        Process at most this many new files in this run (complete ones are skipped and do not
        count); None processes all.
    refine_params : mapping
        Keyword overrides for ``refine_alpha`` (``band_width=20`` ...).
    gate : mapping
        Keyword thresholds for ``assess_quality`` (``min_side=128`` ...).
    """

    error_maps: bool = False
    keep_rejected: bool = False
    alpha_bits: int = 8
    store_raw_alpha: bool = True
    limit: int | None = None
    refine_params: Mapping = dataclasses.field(default_factory=dict)
    gate: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.alpha_bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {self.alpha_bits}.")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(
                self.limit, int) or self.limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {self.limit!r}.")
        # Fail on a misspelt threshold before any file is touched, not on the first image.
        from ..refine.quality import QualityThresholds
        QualityThresholds.from_kwargs(**dict(self.gate))
        from ..refine.connectivity import RefineParams
        try:
            RefineParams(**dict(self.refine_params)).validate()
        except TypeError as error:
            raise ValueError(f"unknown refinement parameter: {error}.") from None


@dataclasses.dataclass
class ProcessedPortrait:
    """Everything :func:`process_portrait` computed for one image.

    Attributes
    ----------
    fg : float32 [H, W, 3]     padded foreground colour
    raw_alpha : float32 [H, W] alpha as decoded
    alpha : float32 [H, W]     refined alpha
    changed : bool [H, W]      pixels refinement changed
    stats : dict               refinement statistics (``RefineResult.stats``)
    verdict : QualityVerdict   quality gate result
    error_map : float32 [H, W', 3] or None
    """

    fg: np.ndarray
    raw_alpha: np.ndarray
    alpha: np.ndarray
    changed: np.ndarray
    stats: dict
    verdict: object
    error_map: np.ndarray | None = None


def process_portrait(rgb, alpha, *, refine_params: Mapping | None = None,
                     gate: Mapping | None = None, error_map: bool = False) -> ProcessedPortrait:
    """Refine, pad and judge one portrait.

    Parameters
    ----------
    rgb : ndarray [H, W, 3], 0..1
        Decoded foreground colour.
    alpha : ndarray [H, W], 0..1
        Decoded alpha (1 = opaque).
    refine_params, gate : mapping, optional
        Keyword overrides for ``refine_alpha`` and ``assess_quality``.
    error_map : bool
        Also draw the error-map panel.

    Returns
    -------
    ProcessedPortrait
    """
    result = refine_alpha(alpha, **dict(refine_params or {}))
    fg = pad_foreground(rgb, result.alpha)
    verdict = assess_quality(result.alpha, raw_alpha=alpha, changed=result.changed,
                             **dict(gate or {}))
    panel = None
    if error_map:
        from ..refine.errormap import error_panel
        panel = error_panel(rgb, alpha, result.alpha, result.changed)
    return ProcessedPortrait(fg=fg, raw_alpha=np.asarray(alpha, np.float32), alpha=result.alpha,
                             changed=result.changed, stats=result.stats, verdict=verdict,
                             error_map=panel)


@dataclasses.dataclass(frozen=True)
class FileFailure:
    """An input file that was skipped, and why."""

    file: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """Sent to the ``progress`` callback after each file.

    ``outcome`` is one of ``accepted``, ``rejected``, ``skipped`` (already complete),
    ``failed`` (unreadable or not RGBA), ``taken`` (another writer completed it meanwhile).
    """

    done: int
    total: int
    file: str
    sample_id: str | None
    outcome: str
    detail: str = ""


@dataclasses.dataclass
class RunSummary:
    """What :func:`refine_folder` did.

    ``completed`` is True when every file was handled (some may have failed); False when the
    run stopped early (interrupt, ``limit``, or an unrecoverable ``fatal_error``).
    """

    input_dir: str
    output_dir: str
    found: int = 0
    processed: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped_complete: int = 0
    taken_by_other_writer: int = 0
    failed: list = dataclasses.field(default_factory=list)
    reject_reasons: dict = dataclasses.field(default_factory=dict)
    manifest_repaired: int = 0
    interrupted: bool = False
    limit_reached: bool = False
    fatal_error: str | None = None
    elapsed_s: float = 0.0

    @property
    def completed(self) -> bool:
        return not (self.interrupted or self.limit_reached or self.fatal_error)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["failed"] = [dataclasses.asdict(f) for f in self.failed]
        data["completed"] = self.completed
        return data

    def to_text(self) -> str:
        """Human-readable summary, several lines."""
        rate = self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0
        lines = [f"{self.found} PNG file(s) in {self.input_dir}",
                 f"  processed {self.processed} in {self.elapsed_s:.1f} s ({rate:.2f} files/s): "
                 f"{self.accepted} accepted, {self.rejected} rejected by the quality gate"]
        if self.skipped_complete:
            lines.append(f"  skipped {self.skipped_complete} already complete (resumed run)")
        if self.taken_by_other_writer:
            lines.append(f"  {self.taken_by_other_writer} completed meanwhile by another writer")
        if self.reject_reasons:
            reasons = ", ".join(f"{code} x{count}" for code, count in
                                sorted(self.reject_reasons.items(), key=lambda kv: -kv[1]))
            lines.append(f"  reject reasons: {reasons}")
        if self.manifest_repaired:
            lines.append(f"  manifest: re-listed {self.manifest_repaired} complete sample(s) "
                         "a previous run had not listed")
        if self.failed:
            lines.append(f"  {len(self.failed)} file(s) could not be used and were skipped:")
            lines.extend(f"    {f.file}: {f.reason}" for f in self.failed)
        if self.interrupted:
            lines.append("  interrupted: run the same command again to continue")
        if self.limit_reached:
            lines.append("  stopped at --limit: run the same command again to continue")
        if self.fatal_error:
            lines.append(f"  stopped: {self.fatal_error}")
        lines.append(f"dataset: {self.output_dir}")
        return "\n".join(lines)


def assign_ids(files: list[Path]) -> list[str]:
    """Sample ids for ``files`` (sorted input order): safe stems, unique case-insensitively.

    A file whose safe id collides (ignoring case: macOS and Windows file systems do) with an
    earlier file's gets the 8-hex-digit hash of its full name appended.
    """
    ids, seen = [], set()
    for path in files:
        sample_id = safe_id_from_filename(path.name)
        if sample_id.casefold() in seen:
            digest = hashlib.sha1(path.name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
            sample_id = f"{sample_id[:119]}-{digest}"
        seen.add(sample_id.casefold())
        ids.append(sample_id)
    return ids


def _file_digest(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def refine_folder(input_dir, output_dir, options: RefineOptions | None = None, *,
                  progress: Callable[[ProgressEvent], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  extra_meta: Mapping[str, Mapping] | None = None) -> RunSummary:
    """Turn a folder of RGBA PNGs into the dataset layout of DESIGN.md.

    Parameters
    ----------
    input_dir : str or Path
        Folder with RGBA PNG files (only the folder itself is scanned, not sub-folders, so an
        output folder inside it is never read back as input).
    output_dir : str or Path
        Dataset root; created when missing.
    options : RefineOptions, optional
    progress : callable, optional
        Called with a :class:`ProgressEvent` after every file.
    should_stop : callable, optional
        Polled between files; returning True ends the run cleanly after the current file
        (the CLI sets it from Ctrl-C).
    extra_meta : mapping, optional
        File name -> extra meta keys for that sample (the demo records its synthesis seed).

    Returns
    -------
    RunSummary

    Raises
    ------
    FileNotFoundError
        ``input_dir`` does not exist or is not a folder.
    ValueError
        Bad options, or the input folder lies inside the dataset's own folders.
    DatasetError
        The output root cannot be created or written.

    Notes
    -----
    Files that cannot be read (corrupt, not RGBA) or that the algorithms refuse are recorded
    in ``summary.failed`` and skipped. A write failure (disk full, permissions) stops the run
    with ``summary.fatal_error`` set; everything written before stays complete and valid.
    """
    options = options or RefineOptions()
    started = time.monotonic()
    input_dir = Path(input_dir).expanduser()
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist or is not a folder.")
    writer = DatasetWriter(output_dir)
    summary = RunSummary(input_dir=str(input_dir), output_dir=str(writer.root))
    resolved_input = input_dir.resolve()
    for managed in ("fg", "alpha", "raw_alpha", "error_maps", "meta", "rejected"):
        folder = writer.root / managed
        if resolved_input == folder or folder in resolved_input.parents:
            raise ValueError(f"input folder {input_dir} is inside the dataset's own folder "
                             f"{folder}; choose another input or output folder.")

    files = list_pngs(input_dir)
    ids = assign_ids(files)
    summary.found = len(files)

    # A writer killed between its meta rename and its manifest append leaves a complete sample
    # the manifest does not list: list those now (cheap; usually none).
    try:
        for sample_id in sorted(set(list_sample_ids(writer.root)) - writer.listed_ids()):
            summary.manifest_repaired += int(writer.ensure_listed(sample_id))
    except OSError as error:
        raise DatasetError(f"cannot update the manifest in {writer.root}: {error}") from error

    reasons: collections.Counter = collections.Counter()
    for done, (path, sample_id) in enumerate(zip(files, ids), 1):
        if should_stop is not None and should_stop():
            summary.interrupted = True
            break
        outcome, detail = None, ""
        try:
            if writer.is_complete(sample_id):
                summary.skipped_complete += 1
                outcome = "skipped"
                continue
            if options.limit is not None and summary.processed >= options.limit:
                summary.limit_reached = True
                break
            try:
                rgb, alpha = read_rgba(path)
                digest, size = _file_digest(path)
            except (ImageFileError, OSError) as error:
                detail = _reason(error, path)
                summary.failed.append(FileFailure(path.name, detail))
                outcome = "failed"
                continue
            try:
                result = process_portrait(rgb, alpha, refine_params=options.refine_params,
                                          gate=options.gate, error_map=options.error_maps)
            except (ValueError, MemoryError) as error:
                detail = f"cannot be refined: {error}"
                summary.failed.append(FileFailure(path.name, detail))
                outcome = "failed"
                continue

            verdict = result.verdict
            meta = {
                "source_file": path.name,
                "source_sha256": digest,
                "source_bytes": size,
                "tool": {"name": "ld-portrait", "version": tool_version(), "command": "refine"},
                "padding": {"method": "layerdiffuse_pyramid", "alpha": "refined"},
                "refinement": result.stats,
                "verdict": verdict.to_dict(),
                **dict((extra_meta or {}).get(path.name, {})),
            }
            keep = bool(verdict.keep)
            store = keep or options.keep_rejected
            written = writer.write_sample(
                sample_id, result.fg, result.alpha, meta=meta,
                raw_alpha=result.raw_alpha if (options.store_raw_alpha and store) else None,
                error_map=result.error_map if store else None,
                rejected=not keep, store_images=store, alpha_bits=options.alpha_bits)
            if not written.written:
                summary.taken_by_other_writer += 1
                outcome = "taken"
                continue
            summary.processed += 1
            if keep:
                summary.accepted += 1
                outcome = "accepted"
            else:
                summary.rejected += 1
                reasons.update(verdict.reasons)
                outcome = "rejected"
        except KeyboardInterrupt:
            # A second Ctrl-C (or one outside the CLI): writes are atomic, so stopping here
            # leaves no partial sample; the current file is simply not done.
            summary.interrupted = True
            break
        except (DatasetError, SampleIdError) as error:
            summary.fatal_error = str(error)
            break
        except OSError as error:
            summary.fatal_error = (f"cannot write to {writer.root}: {error.strerror or error}"
                                   f"{' (disk full?)' if is_disk_full(error) else ''}; samples "
                                   "written so far are complete, run again once fixed.")
            break
        finally:
            if outcome is not None and progress is not None:
                progress(ProgressEvent(done, len(files), path.name, sample_id, outcome, detail))
    summary.reject_reasons = dict(reasons)
    summary.elapsed_s = time.monotonic() - started
    return summary


def _reason(error: Exception, path: Path) -> str:
    """Error message without the path prefix (the summary already names the file)."""
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


# --------------------------------------------------------------------------------------------
# Demo
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class DemoSummary:
    """What :func:`run_demo` wrote, plus refinement quality against the synthetic truth.

    ``sad_raw`` / ``sad_refined``: mean sum of absolute alpha differences to the ground truth
    per portrait, in thousands of pixels (the matting literature's SAD unit), before and after
    refinement; ``None`` for portraits that were not refined in this run.
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

    def to_text(self) -> str:
        lines = [self.run.to_text()]
        if self.sad_raw is not None:
            lines.append(f"against the synthetic ground truth: SAD {self.sad_raw:.2f}k -> "
                         f"{self.sad_refined:.2f}k, MSE {self.mse_raw * 1e3:.2f}e-3 -> "
                         f"{self.mse_refined * 1e3:.2f}e-3 (mean per portrait)")
        lines += [f"inputs (RGBA):  {self.input_dir}",
                  f"contact sheet:  {self.contact_sheet}"]
        return "\n".join(lines)


def run_demo(output_dir, *, count: int = 8, size: int = 512, seed: int = 0,
             options: RefineOptions | None = None,
             progress: Callable[[ProgressEvent], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> DemoSummary:
    """Synthesise ``count`` portraits, refine them into a dataset and draw a contact sheet.

    Writes ``output_dir/input/portrait_NNN.png`` (RGBA with Layer-Diffusion-like artifacts),
    ``output_dir/dataset/`` (the same path as :func:`refine_folder`, with error maps and
    rejected samples kept so every portrait appears on the sheet) and
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
    from ..dataset.sheet import SheetRow, contact_sheet
    from .synthetic import make_portrait

    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise ValueError(f"count must be a whole number in 1..1000, got {count!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 4096:
        raise ValueError(f"size must be a whole number in 64..4096, got {size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}.")
    options = options or RefineOptions(error_maps=True, keep_rejected=True)
    output_dir = Path(output_dir).expanduser()
    input_dir = output_dir / "input"
    dataset_dir = output_dir / "dataset"
    try:
        input_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"cannot create {input_dir}: {error.strerror or error}. Choose a "
                           "folder you can write to.") from error
    # Re-running the demo into the same folder resumes it; mixing two image sizes or seeds in
    # one dataset would not (complete samples are skipped), so refuse that clearly.
    settings_path = output_dir / "demo.json"
    settings = {"size": size, "seed": seed}
    if settings_path.is_file():
        try:
            previous = json.loads(settings_path.read_text("utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous != settings:
            raise ValueError(
                f"{output_dir} already holds a demo made with {previous}; this run asks for "
                f"{settings}. Choose another OUTPUT_DIR or delete that one.")
    else:
        write_bytes_atomic(settings_path, json.dumps(settings).encode())

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
            "synthetic": {"generator": "refine.synthetic.make_portrait",
                          "artifact_pixels": {family: int(np.count_nonzero(mask)) for family, mask
                                              in sorted(portrait.artifact_masks.items())}}}

    if len(truths) < count:  # stopped while synthesising: refine nothing, say so
        run = RunSummary(input_dir=str(input_dir), output_dir=str(dataset_dir), interrupted=True)
    else:
        run = refine_folder(input_dir, dataset_dir, options, progress=progress,
                            should_stop=should_stop, extra_meta=extra)

    rows, sad_raw, sad_ref, mse_raw, mse_ref = [], [], [], [], []
    for name in sorted(truths):
        sample_id = safe_id_from_filename(name)
        try:
            sample = load_sample(dataset_dir, sample_id)
        except KeyError:
            continue  # interrupted before this one
        if sample.fg is None:
            continue  # rejected without images (keep_rejected off)
        rgb, raw = read_rgba(input_dir / name)
        truth = truths[name]
        sad_raw.append(np.abs(raw - truth).sum() / 1e3)
        sad_ref.append(np.abs(sample.alpha - truth).sum() / 1e3)
        mse_raw.append(float(np.mean((raw - truth) ** 2)))
        mse_ref.append(float(np.mean((sample.alpha - truth) ** 2)))
        verdict = sample.meta.get("verdict", {})
        stats = sample.meta.get("refinement", {})
        kept = bool(verdict.get("keep"))
        note = "kept" if kept else "rejected: " + ", ".join(verdict.get("reasons", []))
        note += f"   corrected {stats.get('changed_pixels', 0)} px"
        rows.append(SheetRow(label=sample_id, rgb=rgb, raw_alpha=raw, fg=sample.fg,
                             alpha=sample.alpha, note=note, kept=kept))

    sheet_path = output_dir / "contact_sheet.png"
    if rows:
        sheet = contact_sheet(rows, cell=min(256, size))
        write_png_atomic(sheet_path, sheet.astype(np.float32) / np.float32(255.0))
    summary = DemoSummary(output_dir=str(output_dir), input_dir=str(input_dir),
                          dataset_dir=str(dataset_dir),
                          contact_sheet=str(sheet_path) if rows else "(none: nothing refined)",
                          run=run)
    if sad_raw:
        summary.sad_raw, summary.sad_refined = float(np.mean(sad_raw)), float(np.mean(sad_ref))
        summary.mse_raw, summary.mse_refined = float(np.mean(mse_raw)), float(np.mean(mse_ref))
    return summary
