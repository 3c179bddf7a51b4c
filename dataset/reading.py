"""Reading a dataset: complete ids, samples as arrays, meta files, the manifest (and its
rebuild from meta/), and cleaning up temporary files left by killed writers."""
from __future__ import annotations

import contextlib
import json
import dataclasses
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from .ids import validate_id
from .imagefiles import ImageFileError, read_gray, read_rgba
from .jsonvalues import dumps_line, manifest_entry
from .layout import IMAGE_KINDS, MANIFEST_NAME, META_DIR, REJECTED_DIR, TMP_PREFIX, DatasetError
from .safeio import (MetaFileError, open_control_file, read_meta_file, root_lock,
                     temporary_owner_gone, write_file_atomic)

__all__ = ["list_sample_ids", "read_manifest", "rebuild_manifest", "Sample", "load_sample",
           "iter_meta", "remove_stale_temporary"]


def list_sample_ids(root, *, rejected: bool = False) -> list[str]:
    """Sorted ids of complete samples (those with a meta file) in ``root`` or its rejected/."""
    folder = Path(root) / (REJECTED_DIR if rejected else "") / META_DIR
    if not folder.is_dir():
        return []
    ids = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith(".json") and not name.startswith("."):
                ids.append(name[:-5])
    return sorted(ids)


def read_manifest(root) -> list[dict]:
    """All manifest entries of ``root`` in file order (empty list when there is none).

    Raises
    ------
    ValueError
        A line is not valid JSON or has no ``id``; the message gives the line number and
        suggests :func:`rebuild_manifest`.
    DatasetError
        ``manifest.jsonl`` is a symbolic link (refused, see :mod:`.safeio`).
    """
    path = Path(root) / MANIFEST_NAME
    if not os.path.lexists(path):
        return []
    entries = []
    with os.fdopen(open_control_file(path, os.O_RDONLY), "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise TypeError(f"a JSON {type(entry).__name__}, not an object")
                entry["id"]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(
                    f"{path}, line {number}: not a valid manifest entry ({error}); run "
                    "rebuild_manifest() or `ld-portrait dataset verify --repair`.") from None
            entries.append(entry)
    return entries


def rebuild_manifest(root) -> int:
    """Rewrite ``manifest.jsonl`` from ``meta/`` (sorted by id); returns the number of lines.

    Safe to run while writers are active: it holds the root lock, and writers re-read a
    replaced manifest before their next append.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder.")
    manifest = root / MANIFEST_NAME
    if manifest.is_symlink():  # the rename would replace the link; still say why it is wrong
        os.close(open_control_file(manifest, os.O_RDONLY))
    with root_lock(root):
        lines = []
        for sample_id in list_sample_ids(root):
            try:
                meta = read_meta_file(root / META_DIR / f"{sample_id}.json", sample_id)
            except (OSError, MetaFileError):
                continue  # verify() reports unreadable meta files
            lines.append(dumps_line(manifest_entry(meta)))
        write_file_atomic(manifest, b"".join(lines))
    return len(lines)


def remove_stale_temporary(root, *, older_than_s: float = 600.0) -> int:
    """Delete temporary files left by killed writers; returns how many were removed.

    A file whose creating process is known to be gone (created on this machine by a process
    that no longer runs, see :func:`.safeio.temporary_owner_gone`) is removed at once; any
    other only once older than ``older_than_s`` seconds, so a writer that is running right
    now (its temporary files live for milliseconds), on this machine or another, is never
    disturbed.
    """
    root = Path(root).resolve()
    cutoff = time.time() - older_than_s
    removed = 0
    for base in (root, root / REJECTED_DIR):
        for kind in (*IMAGE_KINDS, META_DIR):
            folder = base / kind
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            if (temporary_owner_gone(entry.name)
                                    or entry.stat(follow_symlinks=False).st_mtime < cutoff):
                                os.unlink(entry.path)
                                removed += 1
    return removed


@dataclasses.dataclass
class Sample:
    """One sample read back from a dataset (arrays float32 in 0..1)."""

    sample_id: str
    status: str
    meta: dict
    fg: np.ndarray | None          # [H, W, 3]
    alpha: np.ndarray | None       # [H, W]
    raw_alpha: np.ndarray | None   # [H, W]


def _read_image(path: Path, gray: bool) -> np.ndarray:
    """A stored image as float32 0..1: gray ``[H, W]`` or RGB ``[H, W, 3]``.

    Raises
    ------
    DatasetError
        Missing or unreadable file.
    """
    try:
        return read_gray(path) if gray else read_rgba(path, require_alpha=False)[0]
    except ImageFileError as error:
        reason = str(error).removeprefix(f"{path}: ")  # name the file once
        raise DatasetError(f"{path}: not a readable PNG ({reason.rstrip('.')}).") from error


def load_sample(root, sample_id: str) -> Sample:
    """Read a complete sample (accepted or rejected) back as arrays plus its meta."""
    validate_id(sample_id)
    root = Path(root)
    for status, base in (("accepted", root), ("rejected", root / REJECTED_DIR)):
        meta_path = base / META_DIR / f"{sample_id}.json"
        if meta_path.is_file():
            break
    else:
        raise KeyError(f"no complete sample {sample_id!r} in {root}.")
    try:
        meta = read_meta_file(meta_path, sample_id)
    except MetaFileError as error:
        raise DatasetError(f"{meta_path} {error}; run `ld-portrait dataset verify --repair` to "
                           "move it aside (the next run redoes the sample).") from None
    files = meta.get("files", {})
    if not isinstance(files, dict):
        raise DatasetError(f"{meta_path}: its 'files' is a {type(files).__name__}, not an "
                           "object; run `ld-portrait dataset verify`.")

    def read(kind: str, gray: bool):
        if kind not in files:
            return None
        relative = files[kind]
        # An edited meta must not make us read outside the dataset (nor crash on a number).
        if not isinstance(relative, str) or Path(relative).is_absolute() \
                or Path(relative).drive or ".." in Path(relative).parts:
            raise DatasetError(f"{meta_path}: its files.{kind} ({relative!r}) is not a path "
                               "inside the dataset; run `ld-portrait dataset verify`.")
        return _read_image(root / relative, gray)

    return Sample(sample_id, status, meta, read("fg", False), read("alpha", True),
                  read("raw_alpha", True))


def iter_meta(root, *, rejected: bool = False) -> Iterable[dict]:
    """Meta dicts of all complete samples (sorted by id); unreadable ones are skipped."""
    base = Path(root) / (REJECTED_DIR if rejected else "")
    for sample_id in list_sample_ids(root, rejected=rejected):
        with contextlib.suppress(OSError, MetaFileError):
            yield read_meta_file(base / META_DIR / f"{sample_id}.json")
