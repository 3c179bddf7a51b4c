"""``dataset verify`` for the sharded exports (``dataset export --layout hf|webdataset``):
every shard the plan lists is there, finished, of its recorded size and sha256, and listed the
same way in ``SHA256SUMS``; for the export folder and each nested ``limit_*`` subset."""
from __future__ import annotations

import json
from pathlib import Path

from .export_shards import CHECKSUMS_NAME, SHARDS_NAME, _file_sha256
from .verify import DatasetReport, Problem

__all__ = ["is_shard_export", "verify_shards"]


def _subsets(root: Path) -> list[Path]:
    """The folders of ``root`` that hold a shard plan: itself and its ``limit_*`` subsets."""
    found = [root] if (root / SHARDS_NAME).is_file() else []
    if root.is_dir():
        found += sorted(p for p in root.glob("limit_*") if (p / SHARDS_NAME).is_file())
    return found


def is_shard_export(root) -> bool:
    """True when ``root`` is (or holds subsets of) an ``hf`` / ``webdataset`` export."""
    return bool(_subsets(Path(root)))


def _checksum_list(path: Path) -> dict:
    """``{file: sha256}`` from a ``sha256sum`` list ("<hex>  <file>" lines); {} if absent."""
    listed = {}
    if path.is_file():
        for line in path.read_text("utf-8").splitlines():
            digest, _, name = line.partition("  ")
            if name:
                listed[name] = digest
    return listed


def verify_shards(root) -> DatasetReport:
    """Check an export folder; ``accepted`` counts the rows of the finished shards.

    Problems: ``invalid_shard_record`` (the plan cannot be read), ``incomplete_shard`` (a
    planned shard not finished: the export was interrupted; the same command resumes it),
    ``missing_file``, ``size_mismatch`` and ``checksum_mismatch`` (a shard differs from what
    was recorded: damaged or replaced; delete it and run the same export again),
    ``checksum_list_mismatch`` (``SHA256SUMS`` disagrees with the plan), ``temporary_file``
    (a write in progress or left by a killed export)."""
    root = Path(root)
    report = DatasetReport(root=str(root))

    def problem(kind: str, name: str, detail: str) -> None:
        report.problems.append(Problem(kind, name, detail))

    for base in _subsets(root):
        where = "" if base == root else f"{base.name}/"
        try:
            record = json.loads((base / SHARDS_NAME).read_text("utf-8"))
            shards = list(record["shards"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            problem("invalid_shard_record", f"{where}{SHARDS_NAME}", f"unreadable ({error})")
            continue
        listed = _checksum_list(base / CHECKSUMS_NAME)
        for entry in shards:
            name = str(entry.get("file", "?"))
            path = base / name
            label = where + name
            if not entry.get("sha256"):
                problem("incomplete_shard", label, "not finished: run the same export again to resume")
                continue
            if listed.get(name) != entry["sha256"]:
                problem("checksum_list_mismatch", label, f"{CHECKSUMS_NAME} does not list its recorded sha256")
            if not path.is_file():
                problem("missing_file", label, "listed in the plan but not on disk")
                continue
            if path.stat().st_size != entry.get("bytes"):
                problem("size_mismatch", label, f"{path.stat().st_size} bytes, recorded {entry.get('bytes')}")
                continue
            if _file_sha256(path) != entry["sha256"]:
                problem("checksum_mismatch", label, "content differs from the recorded sha256")
                continue
            report.accepted += int(entry.get("rows") or 0)
        folders = {base} | {(base / str(e.get("file", ""))).parent for e in shards}
        for folder in sorted(folders):
            if folder.is_dir():
                for temp in sorted(folder.glob(".*")):
                    if temp.is_file():
                        problem("temporary_file", where + str(temp.relative_to(base)),
                                "a write in progress, or left by a killed export")
    return report
