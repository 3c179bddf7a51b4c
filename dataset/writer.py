"""The dataset writer: atomic samples, resume, several writers on one root, the manifest.

The layout under a dataset root is described in :mod:`.layout` (and README.md, "Dataset
layout").

Guarantees, and how they are kept:

* **No partial files.** Every file is written to a hidden temporary file (``.tmp-*``) in its
  final folder and renamed into place; a reader never sees half a PNG.
* **A sample is complete when its meta file exists** (and is readable, see the last point).
  Images are renamed into place first and the meta file last, so a run killed at any moment
  leaves either a complete sample or one without meta, which
  :meth:`DatasetWriter.is_complete` reports as not done and a re-run simply writes again.
* **Several writers on one root** (two ComfyUI instances, two CLI runs) never collide: the
  temporary files are private to each writer, and the short publish step (renames + manifest
  append) runs under an exclusive lock on ``<root>/.lock``. The first writer to publish an id
  wins; a later one notices the id is complete and discards its copy, so the manifest never
  gets a duplicate line. Each manifest line is appended with a single ``write()`` on an
  ``O_APPEND`` descriptor while the lock is held.
* **Nothing outside the root is written.** Sample ids are validated (:func:`validate_id`)
  and every target folder is resolved and checked to lie inside the resolved root, which also
  catches sub-folders that are symlinks pointing elsewhere.
* **Files honour the umask** (temporary files are created 0666 minus the umask, not 0600),
  and ``manifest.jsonl`` / ``.lock`` are never opened through a symlink.
* **An unreadable meta file is not a complete sample.** :meth:`DatasetWriter.status` parses
  the meta file; an empty or broken one (a power cut before the data reached the disk) counts
  as not done, is remembered in :attr:`DatasetWriter.unreadable_meta` for the caller to
  report, and is replaced when the sample is written again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import os
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from .ids import validate_id
from .imagefiles import encode_png
from .jsonvalues import dumps_line, manifest_entry, to_jsonable
from .layout import (LOCK_NAME, MANIFEST_NAME, META_DIR, REJECTED_DIR, SCHEMA, DatasetError,
                     SampleIdError)
from .pngtext import insert_text_chunks
from .provenance import META_KEY as PROVENANCE_KEY
from .provenance import ProvenanceDocument, store_provenance
from .reading import list_sample_ids
from .safeio import (MetaFileError, create_temporary, open_control_file, read_meta_file,
                     root_lock, write_file_atomic)
from ..base.validation import as_alpha, as_rgb, check_same_size

__all__ = ["DatasetWriter", "WriteOutcome", "RESERVED_META_KEYS", "sample_status",
           "complete_sample_ids"]

#: Keys the writer sets itself in meta files; callers may not supply them.
RESERVED_META_KEYS = frozenset({"schema", "id", "status", "width", "height", "files",
                                "alpha_bits", "written", PROVENANCE_KEY})


def _byte_at(fd: int, position: int) -> bytes:
    """One byte at ``position`` (os.pread is POSIX-only; lseek + read works everywhere)."""
    os.lseek(fd, position, os.SEEK_SET)
    return os.read(fd, 1)


def _encode_images(sample_id: str, paths: Mapping, fg, alpha: np.ndarray, raw_alpha, error_map,
                   alpha_bits: int, fg_text=()
                   ) -> tuple[list[tuple[str, str, bytes]], dict[str, str]]:
    """PNG payloads ``(folder kind, file name, bytes)`` of a sample's images and the relative
    paths its meta lists; arrays are checked (sizes, NaN) before anything is written. Only the
    fg PNG carries the text chunks ``fg_text`` (as core SaveImage's images do); alphas stay
    plain."""
    fg = as_rgb(fg, "fg")
    check_same_size(fg, alpha, "fg", "alpha")
    name = f"{sample_id}.png"
    payloads = [("fg", name, insert_text_chunks(encode_png(fg, bits=8), fg_text)),
                ("alpha", name, encode_png(alpha, bits=alpha_bits))]
    files = {"fg": paths["fg"], "alpha": paths["alpha"]}
    if raw_alpha is not None:
        raw_alpha = as_alpha(raw_alpha, "raw_alpha")
        check_same_size(raw_alpha, alpha, "raw_alpha", "alpha")
        payloads.append(("raw_alpha", name, encode_png(raw_alpha, bits=alpha_bits)))
        files["raw_alpha"] = paths["raw_alpha"]
    if error_map is not None:
        error_map = np.asarray(error_map)
        if error_map.ndim == 3 and error_map.shape[2] == 4:
            error_map = error_map[..., :3]
        payloads.append(("error_maps", name, encode_png(as_rgb(error_map, "error_map"), bits=8)))
        files["error_map"] = paths["error_map"]
    return payloads, files


def sample_status(root: Path, sample_id: str, unreadable: dict | None = None) -> str | None:
    """``"accepted"``, ``"rejected"`` or None (not complete) for ``sample_id`` under ``root``.

    Reads only (creates and locks nothing), so a dry run may ask too. A meta file that exists
    but cannot be used (empty, not JSON, another id) does not make the sample complete; its
    relative path -> the reason goes into ``unreadable`` (when given). One this user may not
    read (permission denied) counts as complete: it is someone else's, not broken.

    Raises
    ------
    SampleIdError
        ``sample_id`` is not a valid id.
    """
    validate_id(sample_id)
    for status, prefix in (("accepted", ""), ("rejected", f"{REJECTED_DIR}/")):
        relative = f"{prefix}{META_DIR}/{sample_id}.json"
        try:
            read_meta_file(Path(root) / relative, sample_id)
        except FileNotFoundError:
            continue
        except MetaFileError as error:
            if error.denied:  # another user's file: complete, and never replaced by us
                return status
            if unreadable is not None:
                unreadable[relative] = str(error)
            continue
        if unreadable is not None:
            unreadable.pop(relative, None)
        return status
    return None


def complete_sample_ids(root: Path, unreadable: dict | None = None) -> set[str]:
    """Every complete id under ``root`` (accepted and rejected): listed in a meta folder and
    usable by :func:`sample_status` (which records unusable meta files in ``unreadable``)."""
    listed = set(list_sample_ids(root)) | set(list_sample_ids(root, rejected=True))
    complete = set()
    for sample_id in listed:
        try:
            if sample_status(root, sample_id, unreadable) is not None:
                complete.add(sample_id)
        except SampleIdError:  # a file put there by hand: no sample of ours
            continue
    return complete


@dataclasses.dataclass(frozen=True)
class WriteOutcome:
    """What :meth:`DatasetWriter.write_sample` did.

    Attributes
    ----------
    sample_id : str
    status : str
        ``"accepted"`` or ``"rejected"``: where the sample now lives.
    written : bool
        False when another writer had completed the same id first (nothing was changed).
    files : dict
        Relative paths of the sample's files under the root (``meta`` included).
    """

    sample_id: str
    status: str
    written: bool
    files: dict


class DatasetWriter:
    """Write samples into a dataset root with the guarantees in the module docstring.

    Parameters
    ----------
    root : str or Path
        Dataset root; created (with parents) if missing.
    durable : bool
        ``fsync`` every file before it is renamed into place, so a power cut cannot leave a
        renamed but empty file. Costs a little time per sample; on by default.

    Raises
    ------
    DatasetError
        The root cannot be created or written (the message names the folder and the reason).

    Examples
    --------
    >>> writer = DatasetWriter("out/my_dataset")                      # doctest: +SKIP
    >>> if not writer.is_complete("000001"):                          # doctest: +SKIP
    ...     writer.write_sample("000001", fg, alpha, meta={"seed": 1})
    """

    def __init__(self, root, *, durable: bool = True):
        self.durable = durable
        requested = Path(root).expanduser()
        try:
            requested.mkdir(parents=True, exist_ok=True)
            self.root = requested.resolve(strict=True)
            # Creating the lock file proves the root is writable before any work is done.
            os.close(open_control_file(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT))
        except OSError as error:
            raise DatasetError(
                f"cannot use {requested} as a dataset folder: {error.strerror or error}. "
                "Choose a folder you can create and write to.") from error
        if not self.root.is_dir():
            raise DatasetError(f"{requested} is not a folder.")
        self._thread_lock = threading.Lock()
        self._manifest_key: tuple[int, int] | None = None
        self._manifest_offset = 0
        self._manifest_ids: set[str] = set()
        #: ``"meta/<id>.json"`` (or under ``rejected/``) -> why it could not be used, for every
        #: unreadable meta file :meth:`status` met; such a sample counts as not done.
        self.unreadable_meta: dict[str, str] = {}
        #: Hashes of the provenance documents this writer has stored (stored once per run).
        self._stored_provenance: set[str] = set()

    # ---- paths ------------------------------------------------------------------------------

    def _folder(self, kind: str, rejected: bool) -> Path:
        """Absolute folder for ``kind`` (``fg``, ``meta`` ...), created and checked in-root."""
        folder = self.root / REJECTED_DIR / kind if rejected else self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        resolved = folder.resolve(strict=True)
        if resolved != self.root and self.root not in resolved.parents:
            raise DatasetError(
                f"{folder} resolves to {resolved}, outside the dataset root {self.root} (a "
                "symlink?); refusing to write there.")
        return resolved

    def relative_paths(self, sample_id: str, *, rejected: bool = False) -> dict:
        """Relative paths (POSIX style) of every file a sample can have."""
        validate_id(sample_id)
        prefix = f"{REJECTED_DIR}/" if rejected else ""
        return {
            "fg": f"{prefix}fg/{sample_id}.png",
            "alpha": f"{prefix}alpha/{sample_id}.png",
            "raw_alpha": f"{prefix}raw_alpha/{sample_id}.png",
            "error_map": f"{prefix}error_maps/{sample_id}.png",
            "meta": f"{prefix}meta/{sample_id}.json",
        }

    # ---- state ------------------------------------------------------------------------------

    def status(self, sample_id: str) -> str | None:
        """``"accepted"``, ``"rejected"`` or None (not complete) for ``sample_id``.

        A meta file that exists but cannot be used (empty, not JSON, another id) does not
        make the sample complete: it is recorded in :attr:`unreadable_meta` and the sample
        is written again (replacing that file) by the next :meth:`write_sample`. One this user
        may not read (permission denied) counts as complete: it is someone else's, not broken.
        """
        return sample_status(self.root, sample_id, self.unreadable_meta)

    def meta_problem(self, sample_id: str) -> str | None:
        """``"meta/<id>.json is empty"`` when :meth:`status` found that sample's meta unusable
        (the sample is then redone), else None."""
        for prefix in ("", f"{REJECTED_DIR}/"):
            relative = f"{prefix}{META_DIR}/{sample_id}.json"
            if relative in self.unreadable_meta:
                return f"{relative} {self.unreadable_meta[relative]}"
        return None

    def is_complete(self, sample_id: str) -> bool:
        """True when ``sample_id`` is finished (accepted or rejected): a re-run skips it."""
        return self.status(sample_id) is not None

    def complete_ids(self) -> set[str]:
        """Every complete id (accepted and rejected): listed in a meta folder and readable
        (unreadable meta files are recorded in :attr:`unreadable_meta`, as by :meth:`status`).
        """
        return complete_sample_ids(self.root, self.unreadable_meta)

    # ---- writing ----------------------------------------------------------------------------

    def _stage(self, folder: Path, final_name: str, payload: bytes) -> tuple[str, Path]:
        """Write ``payload`` to a private hidden temporary file in ``folder``."""
        fd, tmp = create_temporary(folder, Path(final_name).suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp, folder / final_name

    def store_provenance(self, document: ProvenanceDocument) -> str:
        """Store ``document`` once under ``provenance/`` (see :mod:`.provenance`); returns
        its relative path. Cheap when this writer stored it before and it is still there."""
        path = self.root / document.relative_path
        if document.sha256 not in self._stored_provenance or not path.is_file():
            store_provenance(self.root, document, durable=self.durable)
            self._stored_provenance.add(document.sha256)
        return document.relative_path

    def write_sample(self, sample_id: str, fg, alpha, *, meta: Mapping | None = None,
                     raw_alpha=None, error_map=None, rejected: bool = False,
                     store_images: bool = True, alpha_bits: int = 8,
                     provenance: ProvenanceDocument | None = None,
                     fg_text=()) -> WriteOutcome:
        """Write one sample atomically; meta goes last and marks it complete.

        Parameters
        ----------
        sample_id : str
            Validated with :func:`validate_id`.
        fg : ndarray [H, W, 3]
            Padded foreground colour, float in 0..1 (or uint8/uint16); stored as 8-bit RGB.
        alpha : ndarray [H, W]
            Refined alpha, 1 = opaque; stored as 8- or 16-bit gray (``alpha_bits``).
        meta : mapping, optional
            Anything JSON-like about the sample: prompt, negative, seed, attributes, models,
            refinement stats, verdict, source file ... (numpy values are converted; NaN/inf
            become null). The keys ``schema, id, status, width, height, files, alpha_bits,
            written`` are set by the writer and may not be passed.
        raw_alpha : ndarray [H, W], optional
            Alpha before refinement, stored beside the refined one for audit.
        error_map : ndarray [h, w, 3], optional
            Error-map picture (any size), stored as 8-bit RGB under ``error_maps/``.
        rejected : bool
            Write under ``rejected/`` (the quality gate said no); not added to the manifest.
        store_images : bool
            False writes only the meta file (used for rejected samples that are not kept, so
            that their verdict is recorded and a re-run does not redo them).
        alpha_bits : {8, 16}
            Bit depth of ``alpha`` and ``raw_alpha``.
        provenance : ProvenanceDocument, optional
            What made the sample (API graph or command settings): stored once under
            ``provenance/`` before the meta, which records its reference as ``provenance``.
        fg_text : sequence of (str, str)
            PNG text chunks for the fg image (ComfyUI's ``prompt`` / ``workflow``, see
            :func:`.pngtext.comfy_text_entries`); other images get none.

        Returns
        -------
        WriteOutcome
            ``written`` is False if another writer completed the id first; nothing changes then.

        Raises
        ------
        SampleIdError, ValueError
            Unsafe id, bad arrays (shape, size mismatch, NaN) or reserved meta keys.
        DatasetError
            The root became unusable (for example a sub-folder symlinked outside the root).
        OSError
            Writing failed (disk full, permissions). Nothing already written is lost and no
            partial file is left visible.
        """
        validate_id(sample_id)
        if alpha_bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {alpha_bits}.")
        meta = dict(meta or {})
        clash = sorted(RESERVED_META_KEYS & set(meta))
        if clash:
            raise ValueError(f"meta keys {clash} are set by the writer; rename them.")
        if not store_images and not rejected:
            raise ValueError("store_images=False is only meaningful for rejected samples.")
        alpha = as_alpha(alpha, "alpha")
        height, width = alpha.shape
        status = "rejected" if rejected else "accepted"
        paths = self.relative_paths(sample_id, rejected=rejected)
        payloads, files = [], {}
        if store_images:
            payloads, files = _encode_images(sample_id, paths, fg, alpha, raw_alpha, error_map,
                                             alpha_bits, fg_text)
        record = {"schema": SCHEMA, "id": sample_id, "status": status, "width": width,
                  "height": height, "alpha_bits": alpha_bits, "files": files,
                  "written": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds")}
        record.update(to_jsonable(meta))
        if provenance is not None:  # the document is in place before the meta refers to it
            self.store_provenance(provenance)
            record[PROVENANCE_KEY] = provenance.reference()
        meta_bytes = json.dumps(record, ensure_ascii=False, indent=1, allow_nan=False).encode()
        payloads.append((META_DIR, f"{sample_id}.json", meta_bytes))  # last: marks completion
        relative = {**files, "meta": paths["meta"]}
        if not self._publish(sample_id, payloads, rejected, manifest_entry(record)):
            return WriteOutcome(sample_id, self.status(sample_id) or status, False, relative)
        return WriteOutcome(sample_id, status, True, relative)

    def _publish(self, sample_id: str, payloads: list, rejected: bool,
                 entry: Mapping) -> bool:
        """Stage every payload privately, then, under the root lock, rename them into place
        (meta last) and append ``entry`` to the manifest (accepted samples only).

        Returns False, changing nothing, when another writer completed ``sample_id`` first.
        Staged files are removed whatever happens.
        """
        staged: list[tuple[str, Path]] = []
        try:
            for kind, name, payload in payloads:
                staged.append(self._stage(self._folder(kind, rejected), name, payload))
            with self._thread_lock, root_lock(self.root):
                if self.is_complete(sample_id):  # another writer finished it meanwhile
                    return False
                # Open the manifest before publishing: a refused (symlinked) manifest must not
                # leave a complete sample behind that it does not list.
                manifest_fd = None if rejected else self._open_manifest()
                try:
                    for tmp, final in staged:  # meta is last in the list: it marks completion
                        os.replace(tmp, final)
                    staged.clear()
                    if manifest_fd is not None:
                        self._append_manifest_locked(entry, manifest_fd)
                finally:
                    if manifest_fd is not None:
                        os.close(manifest_fd)
        finally:
            for tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return True

    def retire_sample(self, sample_id: str) -> bool:
        """Remove a complete sample so that it can be written anew (its source changed).

        Under the root lock: the meta files go first (the sample is then simply not done, as
        after a killed write), then its images, accepted and rejected, then its manifest line
        (the manifest is rewritten without it). Returns False when there was nothing to remove.

        Raises
        ------
        SampleIdError
            ``sample_id`` is not a valid id.
        OSError
            A file could not be removed (permissions); what was removed stays removed and a
            later run writes the sample again.
        """
        validate_id(sample_id)
        removed = False
        with self._thread_lock, root_lock(self.root):
            for rejected in (False, True):
                paths = self.relative_paths(sample_id, rejected=rejected)
                # meta first: from then on the sample counts as not done
                for kind in ("meta", "fg", "alpha", "raw_alpha", "error_map"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.root / paths[kind])
                        removed = True
            self._drop_manifest_line_locked(sample_id)
        return removed

    def _drop_manifest_line_locked(self, sample_id: str) -> None:
        """Rewrite the manifest without the lines of ``sample_id`` (the caller holds the lock)."""
        fd = self._open_manifest()
        try:
            with os.fdopen(os.dup(fd), "rb") as handle:
                lines = handle.readlines()
        finally:
            os.close(fd)
        kept = []
        for line in lines:
            try:
                listed = json.loads(line).get("id")
            except (ValueError, AttributeError):
                listed = None  # a torn or foreign line: not ours to judge here (verify does)
            if listed != sample_id:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
        if len(kept) != len(lines):
            write_file_atomic(self.root / MANIFEST_NAME, b"".join(kept), durable=self.durable)

    # ---- manifest ---------------------------------------------------------------------------

    def _refresh_manifest_ids_locked(self, fd: int) -> None:
        """Read manifest lines appended since the last look (by any writer) into the id set."""
        stat = os.fstat(fd)
        key = (stat.st_dev, stat.st_ino)
        if key != self._manifest_key or stat.st_size < self._manifest_offset:
            # Replaced (rebuild_manifest) or truncated: start again from the top.
            self._manifest_key, self._manifest_offset = key, 0
            self._manifest_ids = set()
        if stat.st_size == self._manifest_offset:
            return
        os.lseek(fd, self._manifest_offset, os.SEEK_SET)
        chunks = []
        remaining = stat.st_size - self._manifest_offset
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1  # only whole lines; a torn tail is completed by the append
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._manifest_ids.add(json.loads(line)["id"])
        self._manifest_offset += end

    def _open_manifest(self) -> int:
        """Descriptor of ``manifest.jsonl`` for appending (created; never through a symlink)."""
        return open_control_file(self.root / MANIFEST_NAME, os.O_RDWR | os.O_APPEND | os.O_CREAT)

    def _append_manifest_locked(self, entry: Mapping, fd: int) -> bool:
        """Append ``entry`` to the open manifest ``fd`` unless its id is listed; the caller
        holds the root lock and closes ``fd``."""
        self._refresh_manifest_ids_locked(fd)
        if entry["id"] in self._manifest_ids:
            return False
        line = dumps_line(entry)
        size = os.fstat(fd).st_size
        if size and _byte_at(fd, size - 1) != b"\n":
            line = b"\n" + line  # a crash left a torn last line: never glue onto it
        written = os.write(fd, line)  # one write() per line: O_APPEND keeps it whole
        if written != len(line):
            raise OSError(errno.ENOSPC, f"short write to {MANIFEST_NAME} (disk full?)")
        if self.durable:
            os.fsync(fd)
        self._manifest_ids.add(entry["id"])
        self._manifest_offset = os.fstat(fd).st_size
        return True

    def ensure_listed(self, sample_id: str) -> bool:
        """Add an accepted, complete sample to the manifest if it is missing there.

        A writer killed between renaming the meta file and appending the manifest line leaves
        a complete sample that the manifest does not list; a re-run calls this for every id it
        skips, so the manifest catches up without a full rebuild. Returns True if a line was
        added.
        """
        if self.status(sample_id) != "accepted":  # unreadable meta: not complete, not listed
            return False
        try:
            meta = read_meta_file(self.root / META_DIR / f"{sample_id}.json", sample_id)
        except (OSError, MetaFileError):  # replaced or broken since status(): not listed now
            return False
        with self._thread_lock, root_lock(self.root):
            fd = self._open_manifest()
            try:
                return self._append_manifest_locked(manifest_entry(meta), fd)
            finally:
                os.close(fd)

    def listed_ids(self) -> set[str]:
        """Ids currently in the manifest (read incrementally; cheap to call repeatedly)."""
        with self._thread_lock, root_lock(self.root):
            fd = self._open_manifest()
            try:
                self._refresh_manifest_ids_locked(fd)
            finally:
                os.close(fd)
            return set(self._manifest_ids)
