"""What a folder run reports: per-file events, failures, and the summary with one vocabulary.

Every message about a run counts files with the same words in the same order
(:data:`OUTCOME_LABELS`): "3 accepted, 2 rejected, 1 failed, 4 already complete". The
progress bar of the CLI uses the same labels.
"""
from __future__ import annotations

import dataclasses

__all__ = ["FileFailure", "FileRejection", "SkippedEntry", "ProgressEvent", "RunSummary",
           "OUTCOME_LABELS", "format_counts"]

#: Event outcome -> the words used for it in every message, in the order they are listed.
OUTCOME_LABELS = {
    "accepted": "accepted",
    "rejected": "rejected",
    "failed": "failed",
    "skipped": "already complete",
    "changed": "changed since their sample was made",
    "taken": "done by another writer",
}


def format_counts(counts, *, always=()) -> str:
    """``{"accepted": 3, "rejected": 0, "failed": 1}`` -> ``"3 accepted, 1 failed"``.

    Outcomes in ``always`` are listed even when zero, the others only when present (as the
    progress bar does); unknown outcomes come last under their own name; ``"no files"`` when
    nothing is left to list.
    """
    parts = []
    for outcome, label in OUTCOME_LABELS.items():
        count = int(counts.get(outcome, 0))
        if count or outcome in always:
            parts.append(f"{count} {label}")
    parts += [f"{counts[key]} {key}" for key in sorted(counts)
              if key not in OUTCOME_LABELS and counts[key]]
    return ", ".join(parts) or "no files"


@dataclasses.dataclass(frozen=True)
class FileFailure:
    """An input file that could not be used, and why (``file`` is printable, see
    :func:`..dataset.imagefiles.printable_name`)."""

    file: str
    reason: str


@dataclasses.dataclass(frozen=True)
class FileRejection:
    """An input file the quality gate rejected, with the gate's reason codes."""

    file: str
    reasons: tuple


@dataclasses.dataclass(frozen=True)
class SkippedEntry:
    """A ``*.png`` entry of the input folder that is not a file (a folder, a dangling or
    looping link): listed so that nothing is ignored silently."""

    file: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """Sent to the ``progress`` callback after each file.

    ``outcome`` is one of ``accepted``, ``rejected``, ``skipped`` (already complete),
    ``failed`` (unreadable, too large, not RGBA, or refinement failed), ``changed`` (a
    complete sample exists but its source file's content has changed since: kept, not
    redone), ``taken`` (another writer completed it meanwhile). ``file`` is printable
    (non-UTF-8 bytes escaped).
    """

    done: int
    total: int
    file: str
    sample_id: str | None
    outcome: str
    detail: str = ""


@dataclasses.dataclass
class RunSummary:
    """What :func:`.folder.refine_folder` did.

    ``completed`` is True when every file was handled (some may have failed); False when the
    run stopped early (interrupt, ``limit``, or an unrecoverable ``fatal_error``).
    ``changed``: files whose content differs from the ``source_sha256`` their complete sample
    records (not redone, not counted as complete); ``replaced``: such files whose old sample
    was removed and made again (``--replace-changed``).
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
    rejected_files: list = dataclasses.field(default_factory=list)
    skipped_entries: list = dataclasses.field(default_factory=list)
    redone: list = dataclasses.field(default_factory=list)
    changed: list = dataclasses.field(default_factory=list)
    replaced: list = dataclasses.field(default_factory=list)
    reject_reasons: dict = dataclasses.field(default_factory=dict)
    manifest_repaired: int = 0
    removed_temporary: int = 0
    interrupted: bool = False
    limit_reached: bool = False
    fatal_error: str | None = None
    elapsed_s: float = 0.0

    @property
    def completed(self) -> bool:
        return not (self.interrupted or self.limit_reached or self.fatal_error)

    def counts(self) -> dict:
        """Outcome -> number of files (the keys of :data:`OUTCOME_LABELS`)."""
        return {"accepted": self.accepted, "rejected": self.rejected,
                "failed": len(self.failed), "skipped": self.skipped_complete,
                "changed": len(self.changed), "taken": self.taken_by_other_writer}

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["failed"] = [dataclasses.asdict(f) for f in self.failed]
        data["rejected_files"] = [{"file": r.file, "reasons": list(r.reasons)}
                                  for r in self.rejected_files]
        data["skipped_entries"] = [dataclasses.asdict(s) for s in self.skipped_entries]
        data["redone"] = [dataclasses.asdict(r) for r in self.redone]
        data["changed"] = [dataclasses.asdict(c) for c in self.changed]
        data["replaced"] = [dataclasses.asdict(r) for r in self.replaced]
        data["completed"] = self.completed
        return data

    def to_text(self, *, elapsed_s: float | None = None) -> str:
        """Human-readable summary, several lines.

        ``elapsed_s`` replaces the run's own duration (the demo reports its whole time, so
        that only one duration is printed).
        """
        elapsed = self.elapsed_s if elapsed_s is None else elapsed_s
        handled = self.processed + len(self.failed)
        rate = handled / elapsed if elapsed > 0 else 0.0
        lines = [f"{self.found} PNG file(s) in {self.input_dir}",
                 f"  {format_counts(self.counts())} in {elapsed:.1f} s "
                 f"({rate:.2f} files/s)"]
        if self.rejected_files:
            lines.append("  rejected by the quality gate:")
            lines.extend(f"    {r.file}: {', '.join(r.reasons)}" for r in self.rejected_files)
        for heading, entries in (
                ("failed (not used; fix or remove them and run again)", self.failed),
                ("skipped (named *.png but not a file)", self.skipped_entries),
                ("redone (their meta file was unreadable and has been replaced)", self.redone),
                ("changed since their sample was made (old sample kept; run again with "
                 "--replace-changed to redo them, or give the new pictures other names)",
                 self.changed),
                ("replaced (their source had changed; the old sample was removed and made "
                 "again)", self.replaced)):
            if entries:  # FileFailure or SkippedEntry records: ``file`` and ``reason``
                lines.append(f"  {heading}:")
                lines.extend(f"    {entry.file}: {entry.reason}" for entry in entries)
        if self.manifest_repaired:
            lines.append(f"  manifest: re-listed {self.manifest_repaired} complete sample(s) "
                         "a previous run had not listed")
        if self.removed_temporary:
            lines.append(f"  removed {self.removed_temporary} temporary file(s) an interrupted "
                         "run had left")
        if self.interrupted:
            lines.append("  interrupted: run the same command again to continue")
        if self.limit_reached:
            lines.append("  stopped at --limit: run the same command again to continue")
        if self.fatal_error:
            lines.append(f"  stopped: {self.fatal_error}")
        lines.append(f"dataset: {self.output_dir}")
        return "\n".join(lines)
