"""Folder job for ``ld-portrait key``: green/blue-screen photographs -> a matting dataset.

Same layout, resume and failure handling as ``refine_folder`` (``pipeline/folder.py``): each
PNG is keyed (``matting.keying.chroma_key``), judged by the same quality gate, and written with
the dataset writer (fg = spill-suppressed, padded foreground; alpha = keyed alpha; meta with
the keying settings and measures), so a keyed dataset and a Layer Diffusion dataset compare
directly with ``ld-portrait dataset stats``.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Callable

from ..dataset import (DatasetError, DatasetWriter, SampleIdError, SavePolicy, SampleRecord,
                       is_disk_full, save_record)
from ..dataset.imagefiles import ImageFileError, list_pngs, read_rgba
from ..dataset.version import tool_version
from ..matting.keying import KeyParams, chroma_key
from ..refine.quality import assess_quality
from .folder import assign_ids
from .summary import FileFailure, ProgressEvent, RunSummary

__all__ = ["KeyOptions", "key_folder"]


@dataclasses.dataclass(frozen=True)
class KeyOptions:
    """Options of :func:`key_folder` (the CLI flags map one to one).

    key : KeyParams             keyer settings
    alpha_bits : {8, 16}        bit depth of the stored alphas
    limit : int or None         at most this many new files in this run
    gate : bool                 judge with the quality gate (False accepts every keyed image)
    """

    key: KeyParams = dataclasses.field(default_factory=KeyParams)
    alpha_bits: int = 8
    limit: int | None = None
    gate: bool = True

    def __post_init__(self):
        self.key.validate()
        if self.alpha_bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {self.alpha_bits}.")
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {self.limit!r}.")


def _check_folders(input_dir: Path, writer: DatasetWriter) -> None:
    resolved = input_dir.resolve()
    for managed in ("fg", "alpha", "raw_alpha", "error_maps", "meta", "rejected"):
        folder = writer.root / managed
        if resolved == folder or folder in resolved.parents:
            raise ValueError(f"input folder {input_dir} is inside the dataset's own folder "
                             f"{folder}; choose another input or output folder.")


def _file_digest(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def _reason(error: Exception, path: Path) -> str:
    """Error message without the path prefix (the summary already names the file)."""
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _key_one(path: Path, options: KeyOptions):
    rgb, _ = read_rgba(path, require_alpha=False)
    result = chroma_key(rgb, options.key)
    verdict = assess_quality(result.alpha) if options.gate else None
    return result, verdict


def key_folder(input_dir, output_dir, options: KeyOptions | None = None, *,
               progress: Callable[[ProgressEvent], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> RunSummary:
    """Key every PNG of ``input_dir`` into the dataset root ``output_dir``.

    Returns
    -------
    RunSummary (the same record ``refine_folder`` returns)

    Raises
    ------
    FileNotFoundError   ``input_dir`` is not a folder
    ValueError          bad options, or the input lies inside the dataset's folders
    DatasetError        the output root cannot be created or written
    """
    options = options or KeyOptions()
    started = time.monotonic()
    input_dir = Path(input_dir).expanduser()
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist or is not a folder.")
    writer = DatasetWriter(output_dir)
    _check_folders(input_dir, writer)
    summary = RunSummary(input_dir=str(input_dir), output_dir=str(writer.root))
    files = list_pngs(input_dir)
    summary.found = len(files)
    reasons: collections.Counter = collections.Counter()
    for done, (path, sample_id) in enumerate(zip(files, assign_ids(files)), 1):
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
                digest, size = _file_digest(path)
                result, verdict = _key_one(path, options)
            except (ImageFileError, ValueError, OSError, MemoryError) as error:
                detail = _reason(error, path)
                summary.failed.append(FileFailure(path.name, detail))
                outcome = "failed"
                continue
            keep = verdict is None or bool(verdict.keep)
            record = SampleRecord(
                sample_id, result.foreground, result.alpha, accepted=keep,
                meta={"source_file": path.name, "source_sha256": digest, "source_bytes": size,
                      "tool": {"name": "ld-portrait", "version": tool_version(),
                               "command": "key"},
                      "padding": {"method": "layerdiffuse_pyramid", "alpha": "keyed"},
                      "keying": result.stats},
                verdict=None if verdict is None else verdict.to_dict())
            outcome_saved = save_record(writer, record, SavePolicy(
                keep_rejected=True, alpha_bits=options.alpha_bits, store_raw_alpha=False))
            if not outcome_saved.written:
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
