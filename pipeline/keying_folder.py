"""Folder job for ``ld-portrait key``: green/blue-screen photographs -> a matting dataset.

Same layout, resume and failure handling as ``refine_folder`` (``pipeline/folder.py``): each
PNG is keyed (``matting.keying.chroma_key``), judged by the same quality gate, and written with
the dataset writer (fg = spill-suppressed, padded foreground; alpha = keyed alpha; meta with
the keying settings and measures), so a keyed dataset and a Layer Diffusion dataset compare
directly with ``ld-portrait dataset stats``.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Callable, Mapping

from ..dataset import (DatasetError, DatasetWriter, SampleIdError, SavePolicy, SampleRecord,
                       save_record)
from ..dataset.imagefiles import ImageFileError, read_rgba
from ..dataset.provenance import ProvenanceDocument, settings_document
from ..dataset.version import tool_version
from ..matting.keying import KeyParams, chroma_key
from ..refine.quality import assess_quality
from .folder import (FileLoop, failure_reason, file_fingerprint, open_folder_run,
                     output_message, retire_changed, run_file_loop, source_change)
from .summary import FileFailure, ProgressEvent, RunSummary
from .workers import WorkerTask

__all__ = ["KeyOptions", "key_folder", "key_settings"]


@dataclasses.dataclass(frozen=True)
class KeyOptions:
    """Options of :func:`key_folder` (the CLI flags map one to one).

    key : KeyParams             keyer settings
    alpha_bits : {8, 16}        bit depth of the stored alphas
    limit : int or None         at most this many new files in this run
    gate : bool                 judge with the quality gate (False accepts every keyed image)
    max_pixels, max_bytes       limits each input is checked against before decoding (None:
                                the environment variable or the default, see
                                ``dataset.imagefiles.check_image_file``)
    replace_changed : bool      redo the sample of a file whose content changed since it was
                                keyed (default: list it and keep the old sample)
    """

    key: KeyParams = dataclasses.field(default_factory=KeyParams)
    alpha_bits: int = 8
    limit: int | None = None
    gate: bool = True
    max_pixels: int | None = None
    max_bytes: int | None = None
    replace_changed: bool = False

    def __post_init__(self):
        self.key.validate()
        if self.alpha_bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {self.alpha_bits}.")
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {self.limit!r}.")


def _key_one(path: Path, options: KeyOptions):
    rgb, _ = read_rgba(path, require_alpha=False, max_pixels=options.max_pixels,
                       max_bytes=options.max_bytes)
    result = chroma_key(rgb, options.key)
    verdict = assess_quality(result.alpha) if options.gate else None
    return result, verdict


def key_settings(options: KeyOptions) -> dict:
    """The parameters a key run resolved: every keyer setting and option, and the quality
    gate's thresholds when it judges (defaults included)."""
    from ..refine.quality import QualityThresholds

    settings = {"options": dataclasses.asdict(options)}
    if options.gate:
        settings["quality_thresholds"] = dataclasses.asdict(QualityThresholds())
    return settings


def _key_file(path: Path, sample_id: str, *, writer: DatasetWriter, options: KeyOptions,
              summary: RunSummary, settings: ProvenanceDocument | None = None
              ) -> tuple[str, str]:
    """Key, judge and save one file that is not complete yet; returns ``(outcome, detail)``
    and counts it in ``summary`` (reject reasons in ``summary.reject_reasons``)."""
    try:
        digest, size, mtime_ns = file_fingerprint(path)
        result, verdict = _key_one(path, options)
    except (ImageFileError, ValueError, OSError, MemoryError) as error:
        detail = failure_reason(error, path)
        summary.failed.append(FileFailure(path.name, detail))
        return "failed", detail
    keep = verdict is None or bool(verdict.keep)
    record = SampleRecord(
        sample_id, result.foreground, result.alpha, accepted=keep,
        meta={"source_file": path.name, "source_sha256": digest, "source_bytes": size,
              "source_mtime_ns": mtime_ns,
              "tool": {"name": "ld-portrait", "version": tool_version(), "command": "key"},
              "padding": {"method": "layerdiffuse_pyramid", "alpha": "keyed"},
              "keying": result.stats},
        verdict=None if verdict is None else verdict.to_dict(), provenance=settings)
    saved = save_record(writer, record, SavePolicy(
        keep_rejected=True, alpha_bits=options.alpha_bits, store_raw_alpha=False))
    if not saved.written:
        summary.taken_by_other_writer += 1
        return "taken", ""
    summary.processed += 1
    if keep:
        summary.accepted += 1
        return "accepted", ""
    summary.rejected += 1
    for code in verdict.reasons:
        summary.reject_reasons[code] = summary.reject_reasons.get(code, 0) + 1
    return "rejected", ""


def _key_worker_setup(output_dir, options: KeyOptions, settings: ProvenanceDocument | None):
    """A worker process's own writer on the run's root."""
    return DatasetWriter(output_dir), options, settings


def _key_in_worker(state, path: Path, sample_id: str) -> tuple[str, str, RunSummary]:
    """:func:`_key_file` in a worker: the outcome, its detail and the summary's part."""
    writer, options, settings = state
    part = RunSummary(input_dir="", output_dir=str(writer.root))
    outcome, detail = _key_file(path, sample_id, writer=writer, options=options, summary=part,
                                settings=settings)
    return outcome, detail, part


def key_folder(input_dir, output_dir, options: KeyOptions | None = None, *,
               progress: Callable[[ProgressEvent], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               command_line: Mapping | None = None, workers: int = 1,
               shard: tuple[int, int] | None = None) -> RunSummary:
    """Key every PNG of ``input_dir`` into the dataset root ``output_dir``.

    ``command_line`` (the parsed ``ld-portrait key`` arguments) and the resolved settings
    (:func:`key_settings`) are stored once under ``provenance/`` and referenced from every
    sample's meta (see :mod:`..dataset.provenance`). ``workers`` and ``shard`` as
    :func:`.folder.refine_folder`'s.

    Returns
    -------
    RunSummary (the same record ``refine_folder`` returns)

    Raises
    ------
    FileNotFoundError   ``input_dir`` is not a folder
    NoInputImagesError  ``input_dir`` holds no PNG file (nothing is created, as ``refine``)
    ValueError          bad options, or the folders overlap (see :func:`.folder.check_folders`)
    DatasetError        the output root cannot be created or written
    """
    options = options or KeyOptions()
    started = time.monotonic()
    files, writer, summary = open_folder_run(input_dir, output_dir, shard)  # as refine's
    settings = settings_document("key", command_line, key_settings(options))
    run_file_loop(FileLoop(
        files, summary, is_done=lambda path, sample_id: writer.is_complete(sample_id),
        process=functools.partial(_key_file, writer=writer, options=options, summary=summary,
                                  settings=settings),
        limit=options.limit, progress=progress, should_stop=should_stop,
        fatal_errors=(DatasetError, SampleIdError, OSError),
        fatal_message=functools.partial(output_message, writer.root),
        changed=lambda path, sample_id: source_change(writer.root, sample_id, path),
        replace_changed=options.replace_changed,
        retire=functools.partial(retire_changed, writer), workers=workers,
        task=WorkerTask(_key_worker_setup, (writer.root, options, settings), _key_in_worker)))
    summary.elapsed_s = time.monotonic() - started
    return summary
