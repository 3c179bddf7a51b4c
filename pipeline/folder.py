"""Folder refinement: every RGBA PNG of a folder into a matting dataset (``ld-portrait refine``).

``refine_folder`` is the loop: it scans the folder, resumes (a complete sample whose source
file has changed since, by its recorded ``source_sha256``, is reported, or replaced on
request, never taken as done), and hands each file to
``_refine_file``, which reads (after checking the header against the size limits), refines,
pads, judges and writes one sample (:mod:`.portrait` does the image work). One bad file never
stops the run: whatever goes wrong with it is recorded with its name in
``RunSummary.failed``; only a write failure of the dataset (disk full, unwritable root) and an
interrupt stop the run. :mod:`.demo` runs the same loop on synthetic portraits.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Mapping

from ..dataset import (DatasetError, DatasetWriter, is_disk_full, list_sample_ids,
                       remove_stale_temporary, save_record)
from ..dataset.layout import IMAGE_KINDS, META_DIR, QUARANTINE_DIR, REJECTED_DIR
from ..dataset.imagefiles import ImageFileError, printable_name, read_rgba, scan_pngs
from ..dataset.provenance import ProvenanceDocument, settings_document
from ..dataset.safeio import MetaFileError, read_meta_file
from .ids import legacy_ids, sample_id_for
from .portrait import (ProcessedPortrait, RefineOptions, process_portrait, sample_record,
                       save_policy)
from .summary import (FileFailure, FileRejection, ProgressEvent, RunSummary, SkippedEntry,
                      format_counts)
from .workers import BrokenProcessPool, OrderedPool, WorkerTask, merge_summary, shard_files

__all__ = ["RefineOptions", "ProcessedPortrait", "process_portrait", "FileFailure",
           "ProgressEvent", "RunSummary", "refine_folder", "open_folder_run", "assign_ids", "sample_id_for",
           "NoInputImagesError", "check_folders", "format_counts", "FileLoop", "run_file_loop",
           "file_digest", "file_fingerprint", "failure_reason", "output_message",
           "SourceChange", "source_change", "retire_changed", "tidy_after_killed_writers",
           "refine_settings"]

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


def file_fingerprint(path: Path) -> tuple[str, int, int]:
    """SHA-256 (hex), size in bytes and modification time (ns) of one opened file; the time is
    taken before the content is read, so a file changed meanwhile shows another time later."""
    with open(path, "rb") as handle:
        mtime_ns = os.fstat(handle.fileno()).st_mtime_ns
        data = handle.read()
    return hashlib.sha256(data).hexdigest(), len(data), mtime_ns


@dataclasses.dataclass(frozen=True)
class SourceChange:
    """A complete sample whose source file has changed since it was made."""

    sample_id: str   # the complete sample (under today's id or an older version's)
    reason: str      # for the summary: what differs and what to do


def source_change(root: Path, sample_id: str, path: Path) -> SourceChange | None:
    """A :class:`SourceChange` when the content of ``path`` differs from the
    ``source_sha256`` recorded in the meta of the complete sample ``sample_id``, else None.

    A sample without a recorded hash (written by another tool or an older version) and a
    file that cannot be read now count as unchanged (nothing to compare; reading the file
    again would report the problem). Cheap checks first, so that resuming a large dataset does
    not read every input again: another size than ``source_bytes`` is a change; the recorded
    size and modification time (``source_mtime_ns``, as make and rsync judge files) mean no
    change; otherwise (a touched file, meta of an older version) the content is hashed.
    """
    meta, where = None, ""
    for prefix in ("", f"{REJECTED_DIR}/"):
        where = f"{prefix}{META_DIR}/{sample_id}.json"
        try:
            meta = read_meta_file(Path(root) / where, sample_id)
            break
        except (OSError, MetaFileError):
            continue
    recorded = meta.get("source_sha256") if meta else None
    if not isinstance(recorded, str):
        return None
    try:
        stat = path.stat()
        recorded_size, recorded_mtime = meta.get("source_bytes"), meta.get("source_mtime_ns")
        if not (isinstance(recorded_size, int) and recorded_size != stat.st_size):
            if recorded_size == stat.st_size and recorded_mtime == stat.st_mtime_ns:
                return None
            if file_digest(path)[0] == recorded:
                return None
    except OSError:
        return None
    return SourceChange(sample_id, (
        f"content differs from the file sample {sample_id} was made from (its sha256 is in "
        f"{where}); the old sample is kept"))


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
    settings: ProvenanceDocument | None = None  # the run's settings, referenced from each meta


def _refine_file(job: _Job, path: Path, sample_id: str, summary: RunSummary) -> tuple[str, str]:
    """Read, refine, judge and save one input file that is not complete yet; returns
    ``(outcome, detail)`` and updates ``summary``.

    Raises :class:`_OutputFailure` when writing the sample fails.
    """
    name = printable_name(path.name)
    options = job.options
    try:
        rgb, alpha = read_rgba(path, max_pixels=options.max_pixels, max_bytes=options.max_bytes)
        digest, size, mtime_ns = file_fingerprint(path)
    except (ImageFileError, OSError) as error:
        return _failed(summary, name, failure_reason(error, path))
    try:
        result = process_portrait(rgb, alpha, refine_params=options.refine_params,
                                  gate=options.gate, error_map=options.error_maps)
    except (ValueError, MemoryError) as error:
        return _failed(summary, name, f"cannot be refined: {error}")
    del rgb, alpha
    # source_mtime_ns lets a resume see an unchanged source without reading it again.
    record = sample_record(sample_id, result, source_file=name, source_sha256=digest,
                           source_bytes=size, extra={**job.extra_meta.get(path.name, {}),
                                                     "source_mtime_ns": mtime_ns})
    if job.settings is not None:
        record = dataclasses.replace(record, provenance=job.settings)
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


def _refine_worker_setup(output_dir, options: RefineOptions, extra_meta: Mapping,
                         settings: ProvenanceDocument | None) -> _Job:
    """A worker process's own writer on the run's root (the legacy ids are the parent's
    business: it decides what is done)."""
    return _Job(DatasetWriter(output_dir), options, extra_meta, frozenset(), settings)


def _refine_in_worker(job: _Job, path: Path, sample_id: str) -> tuple[str, str, RunSummary]:
    """:func:`_refine_file` in a worker: the outcome, its detail and what it adds to the
    summary (the parent merges the parts in input order)."""
    part = RunSummary(input_dir="", output_dir=str(job.writer.root))
    outcome, detail = _refine_file(job, path, sample_id, part)
    return outcome, detail, part


def _complete_id(job: _Job, path: Path, sample_id: str) -> str | None:
    """The id this file is complete under: today's, or one an earlier version gave its name."""
    if job.writer.is_complete(sample_id):
        return sample_id
    return next((old for old in legacy_ids(path.name) if old in job.complete_before), None)


def _is_done(job: _Job, path: Path, sample_id: str) -> bool:
    return _complete_id(job, path, sample_id) is not None


def _source_change(job: _Job, path: Path, sample_id: str) -> SourceChange | None:
    complete = _complete_id(job, path, sample_id)
    return None if complete is None else source_change(job.writer.root, complete, path)


def retire_changed(writer: DatasetWriter, sample_id: str, fatal=None) -> None:
    """Remove the sample of a changed source so that it is made again; a failure to remove is
    a write failure of the dataset (raised as ``fatal(message)`` when given)."""
    try:
        writer.retire_sample(sample_id)
    except OSError as error:
        if fatal is None:
            raise
        raise fatal(output_message(writer.root, error)) from error


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


def tidy_after_killed_writers(writer: DatasetWriter, summary: RunSummary) -> None:
    """What a killed run leaves behind, put right before a run resumes (cheap; usually
    nothing): complete samples the manifest does not list (killed between the meta rename and
    the manifest append) are listed, and temporary files of writers that no longer run (killed
    in the middle of a write) are deleted (:func:`..dataset.remove_stale_temporary`)."""
    try:
        for sample_id in sorted(set(list_sample_ids(writer.root)) - writer.listed_ids()):
            summary.manifest_repaired += int(writer.ensure_listed(sample_id))
    except OSError as error:
        raise DatasetError(f"cannot update the manifest in {writer.root}: {error}") from error
    try:
        summary.removed_temporary += remove_stale_temporary(writer.root)
    except OSError as error:
        raise DatasetError(f"cannot remove the temporary files an interrupted run left in "
                           f"{writer.root}: {error.strerror or error}") from error


def _resolved(cls, overrides: Mapping) -> dict:
    """Every field of ``cls`` with ``overrides`` applied (its defaults filled in); the
    overrides alone when they do not make a ``cls`` (the algorithm reports that itself)."""
    try:
        return dataclasses.asdict(cls(**dict(overrides)))
    except (TypeError, ValueError):
        return dict(overrides)


def refine_settings(options: RefineOptions) -> dict:
    """The parameters a refine run resolved from ``options``: the options themselves and every
    refinement parameter and quality-gate threshold, defaults included."""
    from ..refine.connectivity import RefineParams
    from ..refine.quality import QualityThresholds

    return {"options": dataclasses.asdict(options),
            "refine_params": _resolved(RefineParams, options.refine_params),
            "quality_thresholds": _resolved(QualityThresholds, options.gate)}


def open_folder_run(input_dir, output_dir, shard: tuple[int, int] | None = None):
    """The start every folder job shares: check the folders (:func:`check_folders`), list the
    input PNGs (this shard's), open the dataset writer and the run's summary, and tidy what
    killed writers left. Returns ``(files, writer, summary)``.

    Raises ``FileNotFoundError`` (no input folder), ``NoInputImagesError`` (no PNG: checked
    before the writer, so an empty input creates no dataset folder), ``ValueError`` (the
    folders overlap) or ``DatasetError`` (the root cannot be written)."""
    input_dir, output_dir = check_folders(input_dir, output_dir)
    try:
        files, odd_entries = scan_pngs(input_dir)
    except ImageFileError as error:
        raise FileNotFoundError(str(error)) from None
    if not files:
        raise NoInputImagesError(
            f"input folder {input_dir} holds no PNG file (*.png){' usable' if odd_entries else ''}"
            "; nothing was written.")
    files = shard_files(files, shard)
    writer = DatasetWriter(output_dir)
    summary = RunSummary(input_dir=str(input_dir), output_dir=str(writer.root), found=len(files),
                         skipped_entries=[SkippedEntry(name, why) for name, why in odd_entries])
    tidy_after_killed_writers(writer, summary)
    return files, writer, summary


def refine_folder(input_dir, output_dir, options: RefineOptions | None = None, *,
                  progress: Callable[[ProgressEvent], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  extra_meta: Mapping[str, Mapping] | None = None,
                  replace_changed: bool = False, command_line: Mapping | None = None,
                  workers: int = 1, shard: tuple[int, int] | None = None) -> RunSummary:
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
    replace_changed : bool
        A file whose content differs from the ``source_sha256`` of its complete sample is
        listed in ``summary.changed`` and left alone (False), or its old sample is removed
        and made again (True, listed in ``summary.replaced``).
    command_line : mapping, optional
        The parsed command line (``ld-portrait refine``'s arguments). With the resolved
        parameters (:func:`refine_settings`) it is stored once under ``provenance/`` and
        referenced from every sample's meta (see :mod:`..dataset.provenance`).
    workers : int
        Worker processes that refine files (:mod:`.workers`); the files, the summary and the
        progress events are those of one worker, whatever the number.
    shard : (K, N), optional
        Only the files of shard K of N (:func:`.workers.shard_of`, a hash of the file name);
        N such runs into one root make the dataset of one unsharded run.

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
    files, writer, summary = open_folder_run(input_dir, output_dir, shard)
    settings = settings_document("refine", command_line, refine_settings(options))
    job = _Job(writer, options, dict(extra_meta or {}), frozenset(writer.complete_ids()),
               settings)
    task = WorkerTask(_refine_worker_setup, (writer.root, options, job.extra_meta, settings),
                      _refine_in_worker)
    run_file_loop(FileLoop(
        files, summary, is_done=lambda path, sample_id: _is_done(job, path, sample_id),
        process=lambda path, sample_id: _refine_file(job, path, sample_id, summary),
        limit=options.limit, progress=progress, should_stop=should_stop,
        fatal_errors=(_OutputFailure,), record_unexpected=True,
        changed=lambda path, sample_id: _source_change(job, path, sample_id),
        replace_changed=replace_changed,
        retire=lambda sample_id: retire_changed(writer, sample_id, _OutputFailure),
        workers=workers, task=task))
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
    changed : callable (path, sample_id) -> SourceChange or None, optional
        Asked for every complete file: has its source changed since (see
        :func:`source_change`)? A changed file is not skipped as complete.
    replace_changed : bool
        A changed file is listed in ``summary.changed`` (False) or its sample is removed with
        ``retire(sample_id)`` and the file processed again (True; ``summary.replaced``).
    retire : callable (sample_id) -> None, optional
        Removes a complete sample (:func:`retire_changed`).
    workers : int
        With more than one and a ``task``, files are processed by that many worker processes
        (:func:`run_file_loop` says how the result stays that of one).
    task : WorkerTask, optional
        ``process`` in a worker: ``task.process(state, path, sample_id)`` returns
        ``(outcome, detail, summary part)``; raises as ``process`` would.
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
    changed: Callable[[Path, str], SourceChange | None] | None = None
    replace_changed: bool = False
    retire: Callable[[str], None] | None = None
    workers: int = 1
    task: WorkerTask | None = None


def _triage(loop: FileLoop, path: Path, sample_id: str):
    """``(outcome, detail, change)`` of one file before any work: ``"skipped"`` (complete and
    unchanged), ``"changed"`` (complete, its source changed, left alone: listed), or ``None``
    with the change to redo (None for a new file). Counts what it decides in the summary."""
    if not loop.is_done(path, sample_id):
        return None, "", None
    change = loop.changed(path, sample_id) if loop.changed is not None else None
    if change is None:
        loop.summary.skipped_complete += 1
        return "skipped", "", None
    if not loop.replace_changed:
        loop.summary.changed.append(FileFailure(printable_name(path.name), change.reason))
        return "changed", change.reason, change
    return None, "", change


def _retire_for_redo(loop: FileLoop, path: Path, change) -> None:
    """A changed file is made again: retire its old sample and list it as replaced."""
    if change is not None:
        loop.retire(change.sample_id)
        loop.summary.replaced.append(FileFailure(
            printable_name(path.name), f"sample {change.sample_id} made again"))


def run_file_loop(loop: FileLoop) -> None:
    """Skip complete files, process the others, stop at the limit, on ``should_stop`` or a
    second Ctrl-C (writes are atomic, so the current file is simply not done) and at a fatal
    error; send a :class:`ProgressEvent` after every file."""
    if loop.workers > 1 and loop.task is not None:
        _run_file_loop_in_workers(loop)
        return
    summary, total = loop.summary, len(loop.files)
    for done, (path, sample_id) in enumerate(zip(loop.files, assign_ids(loop.files)), 1):
        if loop.should_stop is not None and loop.should_stop():
            summary.interrupted = True
            break
        outcome, detail = None, ""
        try:
            outcome, detail, change = _triage(loop, path, sample_id)
            if outcome is not None:
                continue
            if loop.limit is not None and summary.processed >= loop.limit:
                summary.limit_reached = True
                break
            _retire_for_redo(loop, path, change)
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


def _run_file_loop_in_workers(loop: FileLoop) -> None:
    """:func:`run_file_loop` with ``loop.task`` in ``loop.workers`` processes.

    The parent walks the files in order and decides each as one worker would (complete,
    changed, retired); files to process go to the pool, at most two per worker ahead. Results
    are taken back in input order, so the summary's lists and the progress events come in the
    order of a one-worker run. ``--limit``: a file is handed out only while the processed
    files plus those in flight stay under the limit, so exactly the files a one-worker run
    processes are processed. Ctrl-C (``should_stop``) hands out nothing more and waits for the
    files in flight; a second one (KeyboardInterrupt) stops the workers at once. A fatal error
    hands out nothing more; files already in flight are finished and counted (they are on
    disk). A worker that dies (killed for memory) is a fatal error of the run.
    """
    summary, total = loop.summary, len(loop.files)
    # In input order: [done, path, sample_id, outcome, detail]; outcome None = in the pool.
    entries: collections.deque = collections.deque()
    items = iter(enumerate(zip(loop.files, assign_ids(loop.files)), 1))
    held = None  # the next item, when the limit made it wait for results in flight
    handing_out = True

    def stop_handing_out() -> None:
        nonlocal handing_out
        handing_out = False

    def decide(done: int, path: Path, sample_id: str) -> bool:
        """Skip, list as changed or hand out one file; False when it must wait (limit)."""
        outcome, detail = None, ""
        try:
            outcome, detail, change = _triage(loop, path, sample_id)
            if outcome is not None:
                return True
            if loop.limit is not None and summary.processed + len(pool) >= loop.limit:
                if len(pool) == 0:
                    summary.limit_reached = True
                    stop_handing_out()
                return False
            _retire_for_redo(loop, path, change)
            pool.submit(path, sample_id)
            entries.append([done, path, sample_id, None, ""])
            return True
        except loop.fatal_errors as error:
            summary.fatal_error = loop.fatal_message(error)
            stop_handing_out()
            return True
        except Exception as error:  # noqa: BLE001 - one file must never end the run
            if not loop.record_unexpected:
                raise
            outcome, detail = _failed(summary, printable_name(path.name),
                                      f"unexpected error ({type(error).__name__}: {error})")
            return True
        finally:
            if outcome is not None:
                entries.append([done, path, sample_id, outcome, detail])

    def take_back(entry) -> None:
        """The result of the oldest file in the pool, merged into the summary."""
        done, path, sample_id = entry[:3]
        try:
            entry[3], entry[4], part = pool.next_result()
            merge_summary(summary, part)
        except loop.fatal_errors as error:
            entry[3] = None
            if summary.fatal_error is None:
                summary.fatal_error = loop.fatal_message(error)
            stop_handing_out()
        except BrokenProcessPool:
            entry[3] = None
            if summary.fatal_error is None:
                summary.fatal_error = (
                    f"a worker process ended abruptly (killed, out of memory?) while working on "
                    f"{printable_name(path.name)}; samples written so far are complete: run "
                    "again, with fewer --workers if memory is short.")
            stop_handing_out()
        except Exception as error:  # noqa: BLE001 - one file must never end the run
            if not loop.record_unexpected:
                raise
            entry[3], entry[4] = _failed(summary, printable_name(path.name),
                                         f"unexpected error ({type(error).__name__}: {error})")

    with OrderedPool(loop.task, loop.workers) as pool:
        try:
            while True:
                while handing_out and not pool.full():
                    if loop.should_stop is not None and loop.should_stop():
                        summary.interrupted = True
                        stop_handing_out()
                        break
                    item = held if held is not None else next(items, None)
                    held = None
                    if item is None:
                        stop_handing_out()
                        break
                    if not decide(item[0], *item[1]):
                        held = item if handing_out else None
                        break
                if not entries:
                    break
                entry = entries.popleft()
                if entry[3] is None:
                    take_back(entry)
                if entry[3] is not None and loop.progress is not None:
                    loop.progress(ProgressEvent(entry[0], total, printable_name(entry[1].name),
                                                entry[2], entry[3], entry[4]))
        except KeyboardInterrupt:  # a second Ctrl-C: stop the workers at once
            summary.interrupted = True
            pool.stop_now()
