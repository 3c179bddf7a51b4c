"""Export a dataset as shards of bounded size: Parquet for Hugging Face ``datasets``
(``layout="hf"``, :mod:`.export_hf`) or tar files for WebDataset (``layout="webdataset"``,
:mod:`.export_wds`).

``export_shards(root, dest, ShardOptions(layout="hf"))`` takes the accepted samples of an
ld-portrait dataset, splits them into training and validation exactly as the folder layouts do
(:func:`.export.plan_split`, same ``split`` and ``seed`` -> same ids), and writes each split as
shards of about ``shard_mb`` megabytes (10^6 bytes) of sample payload:

    DEST/data/train-00000-of-00003.parquet      (or .tar)
    DEST/data/validation-00000-of-00001.parquet
    DEST/SHA256SUMS                             ``sha256sum -c`` format, one line per shard
    DEST/ld_portrait_shards.json                the plan: each shard's ids, and when done its
                                                sha256, size and rows
    DEST/ld_portrait_export.json                the options (written first)
    DEST/provenance/<sha256>.json               what made the samples (copied from ROOT)

- The images are the dataset's own PNG files, byte for byte (each is decoded once to check it
  first), so a reader decodes exactly the arrays the dataset holds (8-bit RGB fg; 8- or 16-bit
  gray alpha).
- Bounded: the shards are planned from the file sizes before anything is written (a sample
  larger than ``shard_mb`` gets a shard of its own), and each shard is written streaming
  (Parquet row groups of at most :data:`ROW_GROUP_BYTES`, tar members one by one), so memory
  does not grow with the dataset.
- Resumable: a shard is written to a hidden temporary file and renamed when complete, then
  recorded with its sha256 in ``ld_portrait_shards.json`` and ``SHA256SUMS``; a re-run skips
  the recorded shards (present with their recorded size) and goes on with the next. A re-run
  with other options, or after the dataset changed (another plan), is refused.
- Nested subsets (``limits``): ``DEST/limit_01000/`` ... as the folder layouts; shards holding
  the same samples as a shard of a smaller subset (all its full training shards, every
  validation shard) are hard-linked, not written again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .export import (SETTINGS_NAME, ExportError, ExportEvent, ExportResult, _check_dest,
                     _check_source, _known_layout, _nested_subsets, _options_json, _sorted_limits,
                     _split_fraction, _whole, _Writer)
from .layout import META_DIR, DatasetError
from .safeio import MetaFileError, create_temporary, read_meta_file

__all__ = ["SHARD_LAYOUTS", "ShardOptions", "export_shards", "CHECKSUMS_NAME", "SHARDS_NAME",
           "SampleFiles", "read_sample_files", "shard_names"]

#: Layouts written as shards, and the suffix of their files.
SHARD_LAYOUTS = {"hf": "parquet", "webdataset": "tar"}
#: ``sha256sum -c`` list of the finished shards of a subset.
CHECKSUMS_NAME = "SHA256SUMS"
#: The shard plan of a subset and the record of the finished shards.
SHARDS_NAME = "ld_portrait_shards.json"
_FORMAT = "ld-portrait/shards@1"
_SPLITS = ("train", "validation")
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclasses.dataclass(frozen=True)
class ShardOptions:
    """What :func:`export_shards` writes.

    Attributes
    ----------
    layout : str
        ``"hf"`` (Parquet) or ``"webdataset"`` (tar).
    split : float
        Fraction of the samples in the training split, in (0, 1].
    seed : int
        Seed of the split order, >= 0.
    limits : tuple of int
        Sizes of nested training subsets; empty = one export of everything.
    shard_mb : float
        Target shard size in megabytes (10^6 bytes) of payload, > 0.
    """

    layout: str
    split: float = 0.9
    seed: int = 0
    limits: tuple = ()
    shard_mb: float = 256.0

    def checked(self) -> "ShardOptions":
        _known_layout(self.layout, SHARD_LAYOUTS, "shard layout")
        _whole(self.seed, "seed", 0)
        split = _split_fraction(self.split)
        if isinstance(self.shard_mb, bool) or not isinstance(self.shard_mb, (int, float)) \
                or not float(self.shard_mb) > 0:
            raise ExportError(f"shard size must be a positive number of megabytes, e.g. 256, "
                              f"got {self.shard_mb!r}.")
        return dataclasses.replace(self, split=split, shard_mb=float(self.shard_mb),
                                   limits=_sorted_limits(self.limits))

    def to_json(self) -> dict:
        return _options_json(self)


# --------------------------------------------------------------------------------------------
# One sample's files
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SampleFiles:
    """A sample as exported: its meta, the meta file's bytes and the PNG bytes of fg and
    alpha (as stored in the dataset)."""

    sample_id: str
    meta: dict
    meta_bytes: bytes
    fg: bytes
    alpha: bytes


def _inside(root: Path, meta: dict, kind: str, sample_id: str) -> Path:
    files = meta.get("files")
    relative = files.get(kind) if isinstance(files, dict) else None
    if not isinstance(relative, str) or Path(relative).is_absolute() or Path(relative).drive \
            or ".." in Path(relative).parts:
        raise ValueError(f"sample {sample_id}: its meta names no {kind} file inside the "
                         f"dataset ({relative!r}); run `ld-portrait dataset verify`.")
    return root / relative


def _meta(root: Path, sample_id: str) -> tuple[dict, bytes]:
    path = root / META_DIR / f"{sample_id}.json"
    try:
        payload = path.read_bytes()
        return read_meta_file(path, sample_id), payload
    except MetaFileError as error:
        raise ValueError(f"{path} {error}") from None
    except OSError as error:
        raise ValueError(f"{path}: unreadable ({error.strerror or error})") from None


def _tar_member_size(size: int) -> int:
    """A tar member's bytes: a 512-byte header and the data padded to 512."""
    return 512 + -(-size // 512) * 512


def _payload_size(root: Path, sample_id: str, layout: str) -> int:
    """Bytes a sample adds to a shard (its fg, alpha and meta files, as tar members for
    ``webdataset``), from the file sizes."""
    meta, payload = _meta(root, sample_id)
    sizes = [len(payload)]
    for kind in ("fg", "alpha"):
        path = _inside(root, meta, kind, sample_id)
        try:
            sizes.append(path.stat().st_size)
        except OSError as error:
            raise ValueError(f"sample {sample_id}: {kind} file {path} is missing "
                             f"({error.strerror or error}).") from None
    if layout == "webdataset":
        return sum(_tar_member_size(size) for size in sizes)
    return sum(sizes)


def _checked_png(payload: bytes, path: Path, gray: bool) -> np.ndarray:
    """Decode ``payload`` to be sure it is a whole PNG of the expected kind."""
    import cv2

    if not payload.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path}: not a PNG file.")
    if not payload.endswith(_PNG_END):  # a cut file may still decode, with rows missing
        raise ValueError(f"{path}: not a whole PNG (no end chunk: truncated).")
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable PNG (truncated or damaged).")
    if gray != (image.ndim == 2):
        raise ValueError(f"{path}: expected a {'gray' if gray else 'colour'} PNG.")
    return image


def read_sample_files(root, sample_id: str) -> SampleFiles:
    """The meta and PNG bytes of an accepted sample, each image decoded once as a check.

    Raises
    ------
    ValueError
        Unreadable meta, a missing, damaged or mismatched image file.
    """
    root = Path(root)
    meta, meta_bytes = _meta(root, sample_id)
    shapes, payloads = [], {}
    for kind in ("fg", "alpha"):
        path = _inside(root, meta, kind, sample_id)
        try:
            payloads[kind] = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{path}: unreadable ({error.strerror or error}).") from None
        shapes.append(_checked_png(payloads[kind], path, gray=kind == "alpha").shape[:2])
    if shapes[0] != shapes[1]:
        raise ValueError(f"sample {sample_id}: fg is {shapes[0][1]}x{shapes[0][0]} but alpha "
                         f"is {shapes[1][1]}x{shapes[1][0]}.")
    return SampleFiles(sample_id, meta, meta_bytes, payloads["fg"], payloads["alpha"])


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------

def shard_names(split: str, count: int, suffix: str) -> list[str]:
    """``data/<split>-00000-of-00003.<suffix>`` ... (the hub's sharded naming)."""
    return [f"data/{split}-{i:05d}-of-{count:05d}.{suffix}" for i in range(count)]


def _pack(ids, sizes: dict, limit: float) -> list[list]:
    """Greedy shards in order: a shard closes when the next sample would take it over
    ``limit`` bytes (a sample over ``limit`` alone gets a shard)."""
    shards, current, used = [], [], 0
    for sample_id in ids:
        size = sizes[sample_id]
        if current and used + size > limit:
            shards.append(current)
            current, used = [], 0
        current.append(sample_id)
        used += size
    if current:
        shards.append(current)
    return shards


@dataclasses.dataclass
class _Shard:
    split: str
    name: str
    ids: list


def _plan(ids, sizes: dict, options: ShardOptions) -> list[tuple[str, list]]:
    """[(subset folder, [shards])] for every subset."""
    _, validation, plans = _nested_subsets(ids, options, "sample")
    limit_bytes = options.shard_mb * 1e6
    suffix = SHARD_LAYOUTS[options.layout]
    subsets = []
    for folder, train_ids in plans:
        shards = []
        for split, part in (("train", train_ids), ("validation", validation)):
            packed = _pack([i for i in part if i in sizes], sizes, limit_bytes)
            for name, shard_ids in zip(shard_names(split, len(packed), suffix), packed):
                shards.append(_Shard(split, name, shard_ids))
        subsets.append((folder, shards))
    return subsets


# --------------------------------------------------------------------------------------------
# The record of a subset
# --------------------------------------------------------------------------------------------

def _read_record(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text("utf-8"))
        record["shards"]
        return record
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(f"{path}: unreadable ({error}); delete this subset's folder and run "
                          "again to redo it.") from None


def _write_record(writer: _Writer, base: Path, record: dict) -> None:
    writer.write(base / SHARDS_NAME, (json.dumps(record, indent=1) + "\n").encode())
    lines = [f"{entry['sha256']}  {entry['file']}\n" for entry in record["shards"]
             if entry.get("sha256")]
    writer.write(base / CHECKSUMS_NAME, "".join(lines).encode())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def _shard_writer(layout: str):
    if layout == "hf":
        from .export_hf import require_pyarrow, write_parquet_shard

        require_pyarrow()
        return write_parquet_shard
    from .export_wds import write_tar_shard

    return write_tar_shard


def export_shards(root, dest, options: ShardOptions, *,
                  progress: Callable[[ExportEvent], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> ExportResult:
    """Export the accepted samples of ``root`` to ``dest`` as shards (see the module doc).

    ``progress`` is called after each sample (outcome ``written``, ``linked``, ``skipped`` or
    ``failed``); ``should_stop`` is polled between samples: the shard being written is then
    dropped and the result says ``interrupted`` (a re-run continues with that shard).

    Raises
    ------
    ExportError
        Not a dataset, bad options, a limit above the training count, an unusable ``dest``,
        ``pyarrow`` / ``webdataset`` missing, a dataset that changed under an earlier run.
    OSError
        ``dest`` cannot be written.
    """
    options = options.checked()
    write_shard = _shard_writer(options.layout)  # the missing-package error before any work
    root, ids = _check_source(root)
    sizes, failed = {}, {}
    for sample_id in ids:
        try:
            sizes[sample_id] = _payload_size(root, sample_id, options.layout)
        except (ValueError, DatasetError) as error:
            failed[sample_id] = str(error)
    subsets = _plan(ids, sizes, options)
    settings = {"format": _FORMAT, "source": str(root), "options": options.to_json()}
    dest_real = _check_dest(dest, root, settings)
    dest_real.mkdir(parents=True, exist_ok=True)
    writer = _Writer(dest_real)
    writer.write(dest_real / SETTINGS_NAME, (json.dumps(settings, indent=1) + "\n").encode())
    result = ExportResult(str(dest_real), options.layout, {}, {}, [])
    total = len(failed) + sum(len(shard.ids) for _, shards in subsets for shard in shards)
    done = 0
    written_by_ids: dict = {}  # (split, ids) -> (path, entry) of a finished shard, to link

    def report(outcome: str, name: str, detail: str = "") -> None:
        result.counts[outcome] = result.counts.get(outcome, 0) + 1
        if progress is not None:
            progress(ExportEvent(done, total, outcome, name, detail))

    for sample_id, reason in failed.items():
        done += 1
        report("failed", sample_id, reason)
    for folder, shards in subsets:
        base = dest_real if folder == "." else dest_real / folder
        record_path = base / SHARDS_NAME
        record = _read_record(record_path)
        planned = [{"file": s.name, "split": s.split, "ids": s.ids} for s in shards]
        if record is not None and [{key: entry.get(key) for key in ("file", "split", "ids")}
                                   for entry in record["shards"]] != planned:
            raise ExportError(f"{base}: its shards were planned for other samples (the "
                              "dataset changed since this export began); choose an empty DEST "
                              "or delete this folder.")
        if record is None:
            record = {"format": _FORMAT, "layout": options.layout, "shards": planned}
            _write_record(writer, base, record)
        counts = {split: 0 for split in _SPLITS}
        for entry in record["shards"]:
            path = base / entry["file"]
            key = (entry["split"], tuple(entry["ids"]))
            outcome = None
            if entry.get("sha256") and path.is_file() \
                    and path.stat().st_size == entry.get("bytes"):
                outcome = "skipped"
            elif key in written_by_ids:
                source, finished = written_by_ids[key]
                writer.link(source, path)
                entry.update({k: finished[k] for k in ("sha256", "bytes", "rows", "failed")})
                outcome = "linked"
            if outcome is None:
                stopped, shard_failures = _write_one(write_shard, root, entry, path, writer,
                                                     should_stop)
                if stopped:
                    result.interrupted = True
                    result.failures = _failure_lines(failed)
                    return result
                entry["failed"] = shard_failures
                _record_finished(entry, path)
                outcome = "written"
            if outcome != "skipped":
                _write_record(writer, base, record)
            for sample_id in entry["ids"]:
                done += 1
                reason = entry.get("failed", {}).get(sample_id)
                if reason is not None:
                    if sample_id not in failed:  # nested subsets: one report per sample
                        failed[sample_id] = reason
                        report("failed", sample_id, reason)
                else:
                    counts[entry["split"]] += 1
                    report(outcome, sample_id)
            written_by_ids[key] = (path, entry)
        result.subsets[folder] = {"train": counts["train"], "validation": counts["validation"]}
    _copy_provenance(root, dest_real, writer)
    result.failures = _failure_lines(failed)
    return result


def _copy_provenance(root: Path, dest: Path, writer: _Writer) -> None:
    """The provenance documents (``provenance/<sha256>.json``: the graph or settings that made
    the samples) go with the export, to ``DEST/provenance/``, so the rows'
    ``provenance_file`` (and the tar shards' per-sample JSON) resolve without the source."""
    source = root / "provenance"
    if not source.is_dir() or source.is_symlink():
        return
    for document in sorted(source.glob("*.json")):
        target = dest / "provenance" / document.name
        if document.is_file() and not document.is_symlink() and not target.is_file():
            writer.write(target, document.read_bytes())


def _record_finished(entry: dict, path: Path) -> None:
    entry["sha256"] = _file_sha256(path)
    entry["bytes"] = path.stat().st_size
    entry["rows"] = len(entry["ids"]) - len(entry["failed"])


def _write_one(write_shard, root: Path, entry: dict, path: Path, writer: _Writer,
               should_stop) -> tuple[bool, dict]:
    """Write one shard through a temporary file; (stopped, {failed id: reason})."""
    writer.folder(path)
    fd, tmp = create_temporary(path.parent, path.suffix)
    os.close(fd)
    shard_failures: dict = {}

    def samples():
        for sample_id in entry["ids"]:
            if should_stop is not None and should_stop():
                raise _Stopped
            try:
                yield read_sample_files(root, sample_id)
            except (ValueError, DatasetError) as error:
                shard_failures[sample_id] = str(error)

    try:
        try:
            write_shard(Path(tmp), samples())
        except _Stopped:
            os.unlink(tmp)
            return True, {}
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return False, shard_failures


class _Stopped(Exception):
    """Raised inside a shard writer's sample loop when the run is asked to stop."""


def _failure_lines(failed: dict) -> list[str]:
    return [f"{sample_id}: {reason}" for sample_id, reason in failed.items()]
