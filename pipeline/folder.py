"""Folder refinement: every RGBA PNG of a folder into a matting dataset (``ld-portrait refine``).

``refine_folder`` is the loop: it scans the folder, resumes, and hands each file to
``_refine_file``, which reads (after checking the header against the size limits), refines,
pads, judges and writes one sample (:mod:`.portrait` does the image work). One bad file never
stops the run: whatever goes wrong with it is recorded with its name in
``RunSummary.failed``; only a write failure of the dataset (disk full, unwritable root) and an
interrupt stop the run. :mod:`.demo` runs the same loop on synthetic portraits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Callable, Mapping

from ..dataset import DatasetError, DatasetWriter, is_disk_full, list_sample_ids, save_record
from ..dataset.layout import IMAGE_KINDS, META_DIR, QUARANTINE_DIR, REJECTED_DIR
from ..dataset.imagefiles import ImageFileError, printable_name, read_rgba, scan_pngs
from .ids import legacy_ids, sample_id_for
from .portrait import (ProcessedPortrait, RefineOptions, process_portrait, sample_record,
                       save_policy)
from .summary import (FileFailure, FileRejection, ProgressEvent, RunSummary, SkippedEntry,
                      format_counts)

__all__ = ["RefineOptions", "ProcessedPortrait", "process_portrait", "FileFailure",
           "ProgressEvent", "RunSummary", "refine_folder", "assign_ids", "sample_id_for",
           "NoInputImagesError", "check_folders", "format_counts", "FileLoop", "run_file_loop",
           "file_digest", "failure_reason", "output_message"]

#: Folders the writer manages inside a dataset root (an input there would read our output).
_MANAGED = (*IMAGE_KINDS, META_DIR, REJECTED_DIR, QUARANTINE_DIR)


class NoInputImagesError(FileNotFoundError):
    """The input folder holds no PNG file (nothing was created)."""


class _OutputFailure(Exception):
    """Writing to the dataset failed: the run stops (every later file would fail the same)."""


def assign_ids(files) -> list[str]:
    """Sample ids of ``files``: :func:`.ids.sample_id_for` of each name (independent of the
    other files)."""
    return [sample_id_for(Path(path).name) for path in files]


def check_folders(input_dir, output_dir) -> tuple[Path, Path]:
    """Check an input folder and a dataset root before anything is created.

    Returns
    -------
    (input_dir, output_dir) : (Path, Path), user-expanded

    Raises
    ------
    FileNotFoundError
        ``input_dir`` does not exist or is not a folder.
    ValueError
        The output is the input folder, lies inside it, or is an existing file; or the input
        lies inside the dataset's own folders.
    """
    input_dir = Path(input_dir).expanduser()
    output_dir = Path(output_dir).expanduser()
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist or is not a folder.")
    resolved_input, resolved_output = input_dir.resolve(), output_dir.resolve()
    if resolved_output == resolved_input or resolved_input in resolved_output.parents:
        raise ValueError(f"output folder {output_dir} is {'the input folder' if resolved_output == resolved_input else 'inside the input folder'} "
                         f"{input_dir}: the dataset's fg/, alpha/ and meta/ would mix with the "
                         "source images. Choose an output folder outside the input.")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is an existing file, not a folder; give a "
                         "folder (it is created when missing).")
    for managed in _MANAGED:
        folder = resolved_output / managed
        if resolved_input == folder or folder in resolved_input.parents:
            raise ValueError(f"input folder {input_dir} is inside the dataset's own folder "
                             f"{folder}; choose another input or output folder.")
    return input_dir, output_dir


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a file's content."""
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def failure_reason(error: Exception, path: Path) -> str:
    """Error message without the path prefix (the summary already names the file)."""
    text = str(error)
    for prefix in (f"{path}: ", f"{printable_name(path)}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


@dataclasses.dataclass
class _Job:
    """What every file of one run shares."""

    writer: DatasetWriter
    options: RefineOptions
    extra_meta: Mapping
    complete_before: frozenset  # ids complete when the run started (for legacy ids)


def _refine_file(job: _Job, path: Path, sample_id: str, summary: RunSummary) -> tuple[str, str]:
    """Read, refine, judge and save one input file that is not complete yet; returns
    ``(outcome, detail)`` and updates ``summary``.

    Raises :class:`_OutputFailure` when writing the sample fails.
    """
    name = printable_name(path.name)
    options = job.options
    try:
        rgb, alpha = read_rgba(path, max_pixels=options.max_pixels, max_bytes=options.max_bytes)
        digest, size = file_digest(path)
    except (ImageFileError, OSError) as error:
        return _failed(summary, name, failure_reason(error, path))
    try:
        result = process_portrait(rgb, alpha, refine_params=options.refine_params,
                                  gate=options.gate, error_map=options.error_maps)
    except (ValueError, MemoryError) as error:
        return _failed(summary, name, f"cannot be refined: {error}")
    del rgb, alpha
    record = sample_record(sample_id, result, source_file=name, source_sha256=digest,
                           source_bytes=size, extra=job.extra_meta.get(path.name, {}))
    try:
        saved = save_record(job.writer, record, save_policy(options))
    except (DatasetError, OSError) as error:
        raise _OutputFailure(output_message(job.writer.root, error)) from error
    if not saved.written:
        summary.taken_by_other_writer += 1
        return "taken", ""
    summary.processed += 1
    # A sample whose meta file was unreadable (empty, not JSON) is redone: say which file.
    redone = f"redone: {saved.redone}" if saved.redone else ""
    if saved.redone:
        summary.redone.append(FileFailure(name, saved.redone))
    if saved.accepted:
        summary.accepted += 1
        return "accepted", redone
    summary.rejected += 1
    summary.rejected_files.append(FileRejection(name, tuple(result.verdict.reasons)))
    for code in result.verdict.reasons:
        summary.reject_reasons[code] = summary.reject_reasons.get(code, 0) + 1
    return "rejected", "; ".join(filter(None, [", ".join(result.verdict.reasons), redone]))


def _is_done(job: _Job, path: Path, sample_id: str) -> bool:
    """Complete under today's id, or under an id an earlier version gave this name."""
    return job.writer.is_complete(sample_id) or any(
        old in job.complete_before for old in legacy_ids(path.name))


def _failed(summary: RunSummary, name: str, detail: str) -> tuple[str, str]:
    summary.failed.append(FileFailure(name, detail))
    return "failed", detail


def output_message(root: Path, error: Exception) -> str:
    """Why writing to the dataset ``root`` failed, and what to do (for ``fatal_error``)."""
    if not isinstance(error, OSError):  # DatasetError, SampleIdError: already say it
        return str(error)
    return (f"cannot write to {root}: {error.strerror or error}"
            f"{' (disk full?)' if is_disk_full(error) else ''}; samples written so far are complete, run "
            "again once fixed.")


def _list_unlisted(writer: DatasetWriter, summary: RunSummary) -> None:
    # A writer killed between its meta rename and its manifest append leaves a complete sample
    # the manifest does not list: list those now (cheap; usually none).
    try:
        for sample_id in sorted(set(list_sample_ids(writer.root)) - writer.listed_ids()):
            summary.manifest_repaired += int(writer.ensure_listed(sample_id))
    except OSError as error:
        raise DatasetError(f"cannot update the manifest in {writer.root}: {error}") from error


def refine_folder(input_dir, output_dir, options: RefineOptions | None = None, *,
                  progress: Callable[[ProgressEvent], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  extra_meta: Mapping[str, Mapping] | None = None) -> RunSummary:
    """Turn a folder of RGBA PNGs into the dataset layout (README.md, "Dataset layout").

    Parameters
    ----------
    input_dir : str or Path
        Folder with RGBA PNG files (only the folder itself is scanned, not sub-folders).
    output_dir : str or Path
        Dataset root; created when missing. Not the input folder nor inside it.
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
    NoInputImagesError
        ``input_dir`` holds no PNG file (nothing is created).
    ValueError
        Bad options, or the folders overlap (see :func:`check_folders`).
    DatasetError
        The output root cannot be created or written.

    Notes
    -----
    Anything that goes wrong with one file (unreadable, over the size limits, not RGBA, the
    algorithms refuse it or fail) is recorded in ``summary.failed`` and the run goes on. A
    write failure (disk full, permissions) stops the run with ``summary.fatal_error`` set;
    everything written before stays complete and valid.
    """
    options = options or RefineOptions()
    started = time.monotonic()
    input_dir, output_dir = check_folders(input_dir, output_dir)
    try:
        files, odd_entries = scan_pngs(input_dir)
    except ImageFileError as error:
        raise FileNotFoundError(str(error)) from None
    if not files:
        raise NoInputImagesError(
            f"input folder {input_dir} holds no PNG file (*.png){' usable' if odd_entries else ''}"
            "; nothing was written.")
    writer = DatasetWriter(output_dir)
    summary = RunSummary(input_dir=str(input_dir), output_dir=str(writer.root), found=len(files),
                         skipped_entries=[SkippedEntry(name, why) for name, why in odd_entries])
    _list_unlisted(writer, summary)
    job = _Job(writer, options, dict(extra_meta or {}), frozenset(writer.complete_ids()))
    run_file_loop(FileLoop(
        files, summary, is_done=lambda path, sample_id: _is_done(job, path, sample_id),
        process=lambda path, sample_id: _refine_file(job, path, sample_id, summary),
        limit=options.limit, progress=progress, should_stop=should_stop,
        fatal_errors=(_OutputFailure,), record_unexpected=True))
    summary.elapsed_s = time.monotonic() - started
    return summary


@dataclasses.dataclass
class FileLoop:
    """One folder run's loop (:func:`run_file_loop`), shared by ``refine_folder`` and
    ``key_folder``.

    Attributes
    ----------
    files : list of Path
        The inputs in order; their ids come from :func:`assign_ids`.
    summary : RunSummary
        Updated with skips, the limit, an interrupt and a fatal error.
    is_done : callable (path, sample_id) -> bool
        True when the sample is complete already (skipped).
    process : callable (path, sample_id) -> (outcome, detail)
        Does one file and counts it in ``summary``.
    limit : int or None
        At most this many processed files (``summary.processed``).
    progress, should_stop : callable or None
        As :func:`refine_folder`'s.
    fatal_errors : tuple of exception types
        End the run, with ``fatal_message(error)`` as ``summary.fatal_error``.
    record_unexpected : bool
        Any other Exception is recorded as that file's failure (True) or propagates.
    fatal_message : callable (error) -> str
        E.g. ``functools.partial(output_message, root)``.
    """

    files: list
    summary: RunSummary
    is_done: Callable[[Path, str], bool]
    process: Callable[[Path, str], tuple]
    limit: int | None = None
    progress: Callable[[ProgressEvent], None] | None = None
    should_stop: Callable[[], bool] | None = None
    fatal_errors: tuple = (_OutputFailure,)
    record_unexpected: bool = False
    fatal_message: Callable[[Exception], str] = str


def run_file_loop(loop: FileLoop) -> None:
    """Skip complete files, process the others, stop at the limit, on ``should_stop`` or a
    second Ctrl-C (writes are atomic, so the current file is simply not done) and at a fatal
    error; send a :class:`ProgressEvent` after every file."""
    summary, total = loop.summary, len(loop.files)
    for done, (path, sample_id) in enumerate(zip(loop.files, assign_ids(loop.files)), 1):
        if loop.should_stop is not None and loop.should_stop():
            summary.interrupted = True
            break
        outcome, detail = None, ""
        try:
            if loop.is_done(path, sample_id):
                summary.skipped_complete += 1
                outcome = "skipped"
                continue
            if loop.limit is not None and summary.processed >= loop.limit:
                summary.limit_reached = True
                break
            outcome, detail = loop.process(path, sample_id)
        except KeyboardInterrupt:
            summary.interrupted = True
            break
        except loop.fatal_errors as error:
            summary.fatal_error = loop.fatal_message(error)
            break
        except Exception as error:  # noqa: BLE001 - one file must never end the run
            if not loop.record_unexpected:
                raise
            outcome, detail = _failed(summary, printable_name(path.name),
                                      f"unexpected error ({type(error).__name__}: {error})")
        finally:
            if outcome is not None and loop.progress is not None:
                loop.progress(ProgressEvent(done, total, printable_name(path.name), sample_id,
                                            outcome, detail))
