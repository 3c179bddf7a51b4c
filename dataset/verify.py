"""Consistency check of a dataset root (``ld-portrait dataset verify``) and its repair.

:func:`verify` walks the root in sections, each its own function: the meta files of accepted
and rejected samples (:func:`_check_meta_folder`), the files each meta lists
(:func:`_check_listed_files`), image folders for files without meta (:func:`_check_image_folders`),
the manifest (:func:`_check_manifest`), and with ``repair`` the fixes (:func:`_repair`):
unreadable meta files moved to ``quarantine/`` (the sample is then redone by the next run), the
manifest rebuilt from ``meta/``, stale temporary files deleted.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .layout import (IMAGE_KINDS, MANIFEST_NAME, META_DIR, QUARANTINE_DIR, REJECTED_DIR,
                     DatasetError)
from .reading import rebuild_manifest, remove_stale_temporary
from .safeio import (MISSING, MetaFileError, open_control_file, png_size, read_meta_file,
                     require_dataset, scan_names)

__all__ = ["Problem", "DatasetReport", "verify"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One inconsistency found by :func:`verify`."""

    kind: str        # see DatasetReport.KINDS
    sample_id: str | None
    detail: str


@dataclasses.dataclass
class DatasetReport:
    """Result of :func:`verify`: counts and the list of problems (empty = consistent)."""

    root: str
    accepted: int = 0
    rejected: int = 0
    manifest_lines: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    repaired: bool = False
    removed_temporary: int = 0
    #: Why ``repair`` left the manifest as it was (empty when it did not need to).
    not_repaired: str = ""
    #: ``(from, to)`` relative paths of unreadable meta files moved aside by ``repair``.
    quarantined: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    #: Problem kinds and what they mean.
    KINDS = {
        "invalid_meta": "meta file that is empty, not valid JSON or does not match its id "
                        "(the sample counts as not done; --repair moves it to quarantine/)",
        "unreadable_file": "meta file this user may not read (permissions; not moved by "
                           "--repair: fix the permissions, e.g. chmod a+r)",
        "missing_file": "file listed in meta that does not exist",
        "invalid_image": "image listed in meta that is not a readable PNG (corrupt or "
                         "another format)",
        "size_mismatch": "image whose size differs from the size recorded in meta",
        "accepted_and_rejected": "id present both as accepted and as rejected",
        "invalid_manifest_line": "manifest line that is not valid JSON with an id",
        "manifest_without_meta": "manifest line for an id with no accepted meta",
        "duplicate_manifest_line": "id listed more than once in the manifest",
        "missing_from_manifest": "accepted sample the manifest does not list",
        "incomplete_sample": "image files without meta (interrupted write; a re-run redoes it)",
        "temporary_file": "temporary file (a write in progress, or left by a killed writer)",
        # Sharded exports (dataset/verify_shards.py):
        "invalid_shard_record": "export plan (ld_portrait_shards.json) that cannot be read",
        "incomplete_shard": "planned shard not finished (interrupted export; the same command "
                            "resumes it)",
        "checksum_mismatch": "shard whose content differs from its recorded sha256 (damaged or "
                             "replaced: delete it and run the same export again)",
        "checksum_list_mismatch": "SHA256SUMS line that disagrees with the export plan",
    }
    #: Kinds that rebuild_manifest() repairs.
    MANIFEST_KINDS = ("invalid_manifest_line", "manifest_without_meta",
                      "duplicate_manifest_line", "missing_from_manifest")

    @property
    def ok(self) -> bool:
        """True when no problems were found (temporary files alone are not a problem)."""
        return all(p.kind == "temporary_file" for p in self.problems)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for problem in self.problems:
            out[problem.kind] = out.get(problem.kind, 0) + 1
        return out

    def to_text(self, max_items: int = 20) -> str:
        lines = [f"dataset {self.root}: {self.accepted} accepted, {self.rejected} rejected, "
                 f"{self.manifest_lines} manifest lines"]
        if not self.problems:
            lines.append("consistent: no problems found")
        for kind, count in sorted(self.counts().items()):
            lines.append(f"  {count} x {kind}: {self.KINDS.get(kind, '')}")
        for problem in self.problems[:max_items]:
            lines.append(f"    {problem.kind}: {problem.sample_id or '-'}: {problem.detail}")
        if len(self.problems) > max_items:
            lines.append(f"    ... and {len(self.problems) - max_items} more")
        if self.repaired:
            lines.append("manifest rebuilt from meta/")
        if self.not_repaired:
            lines.append(self.not_repaired)
        if self.removed_temporary:
            lines.append(f"removed {self.removed_temporary} stale temporary file(s)")
        if self.quarantined:
            lines.append(f"moved {len(self.quarantined)} unreadable meta file(s) aside; the next "
                         "run redoes those samples:")
            lines.extend(f"    {source} -> {target}" for source, target in self.quarantined)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"root": self.root, "accepted": self.accepted, "rejected": self.rejected,
                "manifest_lines": self.manifest_lines, "ok": self.ok, "counts": self.counts(),
                "problems": [dataclasses.asdict(p) for p in self.problems],
                "repaired": self.repaired, "not_repaired": self.not_repaired,
                "removed_temporary": self.removed_temporary,
                "quarantined": [list(pair) for pair in self.quarantined]}


@dataclasses.dataclass
class _Scan:
    """State shared by the sections of one :func:`verify` run."""

    root: Path
    report: DatasetReport
    check_sizes: bool
    metas: dict = dataclasses.field(default_factory=dict)   # accepted id -> meta
    invalid_meta: list = dataclasses.field(default_factory=list)  # relative paths
    denied: set = dataclasses.field(default_factory=set)  # accepted ids this user may not read
    provenance: dict = dataclasses.field(default_factory=dict)  # document path -> exists

    def problem(self, kind: str, sample_id: str | None, detail: str) -> None:
        self.report.problems.append(Problem(kind, sample_id, detail))


def verify(root, *, repair: bool = False, check_sizes: bool = True,
           stale_after_s: float = 600.0) -> DatasetReport:
    """Check a dataset root for inconsistencies; optionally repair what is safe to repair.
    An ``hf`` / ``webdataset`` export folder is checked shard by shard instead
    (:func:`.verify_shards.verify_shards`).

    Parameters
    ----------
    root : str or Path
    repair : bool
        Move unreadable meta files (empty, not JSON, wrong id) to ``quarantine/`` so the next
        run redoes those samples; rebuild ``manifest.jsonl`` from ``meta/`` when the manifest
        has problems; delete temporary files older than ``stale_after_s`` seconds (left by
        killed writers). Image problems are only reported (deleting data is the curator's
        decision).
    check_sizes : bool
        Compare each image's size (read from its PNG header, no decoding) with the meta.

    Returns
    -------
    DatasetReport

    Raises
    ------
    DatasetError
        ``root`` is missing or not a dataset (no ``meta/`` or ``manifest.jsonl``); a symlinked
        manifest; a repair that the file system refused (the message names the file).
    """
    from .verify_shards import is_shard_export, verify_shards

    if is_shard_export(root):  # an hf / webdataset export folder: its shards are checked
        report = verify_shards(root)
        if repair:
            report.not_repaired = ("an export is not repaired in place: delete the damaged shards "
                                   "and run the same export again")
        return report
    root = require_dataset(root)
    scan = _Scan(root, DatasetReport(root=str(root)), check_sizes)
    for rejected in (False, True):
        meta_ids = _check_meta_folder(scan, rejected)
        _check_image_folders(scan, rejected, meta_ids)
    _check_manifest(scan)
    if repair:
        _repair(scan, stale_after_s)
    return scan.report


def _check_meta_folder(scan: _Scan, rejected: bool) -> set[str]:
    """Parse every meta file of ``meta/`` (or ``rejected/meta/``); returns the ids found."""
    base = scan.root / REJECTED_DIR if rejected else scan.root
    prefix = f"{REJECTED_DIR}/" if rejected else ""
    meta_folder = os.fspath(base / META_DIR)
    meta_ids, temps = scan_names(base / META_DIR)
    for name in temps:
        scan.problem("temporary_file", None, f"{prefix}{META_DIR}/{name}")
    if rejected:
        scan.report.rejected = len(meta_ids)
    else:
        scan.report.accepted = len(meta_ids)
    for sample_id in sorted(meta_ids):
        relative = f"{prefix}{META_DIR}/{sample_id}.json"
        try:
            meta = read_meta_file(os.path.join(meta_folder, f"{sample_id}.json"), sample_id)
        except MetaFileError as error:
            if error.denied:  # fine perhaps, but not ours to read: never moved aside
                scan.problem("unreadable_file", sample_id, f"{relative} {error}")
                if not rejected:
                    scan.denied.add(sample_id)
            else:
                scan.problem("invalid_meta", sample_id, f"{relative} {error}")
                scan.invalid_meta.append(relative)
            continue
        except OSError as error:  # vanished meanwhile (another process repaired it)
            scan.problem("invalid_meta", sample_id, f"{relative} cannot be read ({error})")
            continue
        if rejected and sample_id in scan.metas:
            scan.problem("accepted_and_rejected", sample_id, "meta in both meta/ and rejected/meta/")
        if not rejected:
            scan.metas[sample_id] = meta
        _check_listed_files(scan, sample_id, meta)
    return meta_ids


def _check_listed_files(scan: _Scan, sample_id: str, meta: dict) -> None:
    """Each file the meta lists exists; PNGs are PNGs of the recorded size."""
    root_text = os.fspath(scan.root)
    files = meta.get("files") or {}
    if not isinstance(files, dict):
        scan.problem("invalid_meta", sample_id, f"its 'files' is a {type(files).__name__}")
        return
    expected = (meta.get("width"), meta.get("height"))
    for kind, relative in files.items():
        # Plain string joins: pathlib costs more than the file system here.
        file_path = os.path.join(root_text, str(relative))
        if scan.check_sizes and kind in ("fg", "alpha", "raw_alpha"):
            size = png_size(file_path)
            if size == MISSING:
                scan.problem("missing_file", sample_id, relative)
            elif size is None:
                scan.problem("invalid_image", sample_id, f"{relative} is not a readable PNG")
            elif size != expected:
                scan.problem("size_mismatch", sample_id, f"{relative} is {size}, meta says {expected}")
        elif not os.path.isfile(file_path):
            scan.problem("missing_file", sample_id, relative)
    reference = meta.get("provenance")  # what made the sample, shared by many: looked up once
    if isinstance(reference, dict) and isinstance(reference.get("file"), str):
        document = reference["file"]
        if document not in scan.provenance:
            scan.provenance[document] = os.path.isfile(os.path.join(root_text, document))
        if not scan.provenance[document]:
            scan.problem("missing_file", sample_id, f"{document} (what made the sample; copy "
                                                    "provenance/ with the dataset)")


def _check_image_folders(scan: _Scan, rejected: bool, meta_ids: set[str]) -> None:
    """Image files without meta (interrupted writes) and temporary files."""
    base = scan.root / REJECTED_DIR if rejected else scan.root
    prefix = f"{REJECTED_DIR}/" if rejected else ""
    for kind in IMAGE_KINDS:
        stems, temps = scan_names(base / kind)
        for name in temps:
            scan.problem("temporary_file", None, f"{prefix}{kind}/{name}")
        for stem in sorted(stems - meta_ids):
            scan.problem("incomplete_sample", stem, f"{prefix}{kind}/{stem}.png has no meta")


def _check_manifest(scan: _Scan) -> None:
    """Manifest lines: valid, unique, each for an accepted meta; every accepted id listed."""
    seen: set[str] = set()
    manifest_path = scan.root / MANIFEST_NAME
    if os.path.lexists(manifest_path):
        with os.fdopen(open_control_file(manifest_path, os.O_RDONLY), "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                scan.report.manifest_lines += 1
                try:
                    sample_id = json.loads(line)["id"]
                except (ValueError, KeyError, TypeError, RecursionError):
                    scan.problem("invalid_manifest_line", None, f"line {number}")
                    continue
                if sample_id in seen:
                    scan.problem("duplicate_manifest_line", sample_id, f"line {number}")
                elif sample_id not in scan.metas and sample_id not in scan.denied:
                    scan.problem("manifest_without_meta", sample_id, f"line {number}")
                seen.add(sample_id)
    for sample_id in sorted((set(scan.metas) | scan.denied) - seen):
        scan.problem("missing_from_manifest", sample_id, "accepted meta not listed")


def _repair(scan: _Scan, stale_after_s: float) -> None:
    """Quarantine unreadable meta, rebuild the manifest if needed, drop stale temporaries."""
    report = scan.report
    for relative in scan.invalid_meta:
        report.quarantined.append((relative, _quarantine(scan.root, relative)))
    try:
        if any(p.kind in report.MANIFEST_KINDS for p in report.problems):
            if scan.denied:  # a rebuild would drop the samples whose meta it cannot read
                report.not_repaired = (
                    f"manifest not rebuilt: {len(scan.denied)} meta file(s) cannot be read by "
                    "this user; fix their permissions and run verify --repair again")
            else:
                rebuild_manifest(scan.root)
                report.repaired = True
        report.removed_temporary = remove_stale_temporary(scan.root, older_than_s=stale_after_s)
    except OSError as error:
        raise DatasetError(
            f"cannot repair {scan.root}: {error.strerror or error}"
            f"{f' ({error.filename})' if error.filename else ''}. Run verify --repair as a user "
            "who may write the dataset folder, or fix its permissions.") from error


def _quarantine(root: Path, relative: str) -> str:
    """Move ``<root>/<relative>`` to ``<root>/quarantine/<relative>`` (a free name); returns
    the new relative path. The sample then has no meta and the next run redoes it."""
    source = root / relative
    target = root / QUARANTINE_DIR / relative
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        resolved = target.parent.resolve(strict=True)
        if root not in resolved.parents:
            raise DatasetError(f"{target.parent} resolves to {resolved}, outside the dataset "
                               f"{root} (a symlink?); not moving {relative} there.")
        stem, number = target.name, 1
        while os.path.lexists(target):  # an earlier repair already moved one of that name
            target = target.with_name(f"{stem}.{number}")
            number += 1
        os.replace(source, target)
    except OSError as error:
        raise DatasetError(
            f"cannot move the unreadable meta file {relative} to {QUARANTINE_DIR}/: "
            f"{error.strerror or error}. Fix the folder's permissions or move it by hand."
        ) from error
    return target.relative_to(root).as_posix()
