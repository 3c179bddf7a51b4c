"""One path from "a processed sample" to files in the dataset: record -> meta -> keep/reject.

Both front ends that create samples use it: the save node (``LDPSaveDataset``, a batch of
tensors from a graph) and ``ld-portrait refine`` (one file at a time). Each builds a
:class:`SampleRecord` (what is known about one sample) and calls :func:`save_record` with a
:class:`SavePolicy` (what to store); the record decides the meta file's content
(:func:`record_meta`) and whether the sample is accepted or rejected, the policy whether a
rejected sample keeps its images. :func:`save_batch` does the same for a batch, skipping ids
that are already complete.

Meta written for a record, in this key order (after the writer's own keys ``schema, id,
status, width, height, alpha_bits, files, written``)::

    **record.meta              what the caller knows (prompt, seed, source file, tool, ...)
    refinement                 record.refinement, when given
    verdict                    record.verdict, when given
    rejected_by                record.rejected_by, for a rejected sample, when given
    **record.trailing_meta     extra keys last (the demo's synthesis seed and attributes)
    provenance                 the reference to record.provenance, when given (set by the
                               writer, which stores the document first)

Examples
--------
>>> record = SampleRecord("000001", fg, alpha, accepted=verdict["keep"],      # doctest: +SKIP
...                       meta={"prompt": "a portrait"}, verdict=verdict, raw_alpha=raw)
>>> outcome = save_record(writer, record, SavePolicy(keep_rejected=False))    # doctest: +SKIP
>>> outcome.action, outcome.line                                              # doctest: +SKIP
('accepted', '000001: accepted')
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from .layout import DatasetError, is_disk_full
from .writer import DatasetWriter

__all__ = ["SampleRecord", "SavePolicy", "SaveOutcome", "BatchOutcome", "BatchInput",
           "record_meta", "save_record", "save_batch", "batch_records", "common_meta",
           "decide_keep", "per_image", "KEEP_INPUT_REASON", "VERDICT_REASON"]

#: ``rejected_by`` of a sample the keep input (not its own verdict) rejected.
KEEP_INPUT_REASON = "keep_input_false"
#: ``rejected_by`` of a sample whose own verdict said no.
VERDICT_REASON = "verdict"


@dataclasses.dataclass(frozen=True)
class SampleRecord:
    """Everything known about one sample, ready to be saved.

    Attributes
    ----------
    sample_id : str
        A safe id (see :func:`~.ids.validate_id`).
    fg : ndarray [H, W, 3]
        Padded foreground colour, float 0..1 (or uint8/uint16).
    alpha : ndarray [H, W]
        Refined alpha, 1 = opaque.
    accepted : bool
        True stores the sample under the root; False under ``rejected/``.
    meta : mapping
        Meta keys first in the file, in their order (prompt, negative, seed, attributes,
        models, tool, source_file, sample_index ...). Must not use the writer's own keys.
    refinement, verdict : mapping or None
        Refinement statistics and quality verdict (JSON-like); stored as ``refinement`` and
        ``verdict`` when not None.
    rejected_by : str or None
        Stored as ``rejected_by`` for a rejected sample when not None
        (:data:`VERDICT_REASON` or :data:`KEEP_INPUT_REASON`).
    raw_alpha : ndarray [H, W] or None
        Alpha before refinement, stored in ``raw_alpha/`` with the images.
    error_map : ndarray [h, w, 3] or None
        Error-map picture, stored in ``error_maps/`` with the images.
    trailing_meta : mapping
        Meta keys written last (they win over equal keys above).
    provenance : ProvenanceDocument or None
        What made the sample (the API graph, a command's settings): stored once per dataset
        and referenced from the meta (see :mod:`.provenance`).
    png_text : sequence of (str, str)
        Text chunks for the fg PNG (ComfyUI's ``prompt`` and ``workflow``); kept for rejected
        samples' images too.
    """

    sample_id: str
    fg: Any
    alpha: Any
    accepted: bool
    meta: Mapping = dataclasses.field(default_factory=dict)
    refinement: Mapping | None = None
    verdict: Mapping | None = None
    rejected_by: str | None = None
    raw_alpha: Any = None
    error_map: Any = None
    trailing_meta: Mapping = dataclasses.field(default_factory=dict)
    provenance: Any = None
    png_text: Sequence = ()


@dataclasses.dataclass(frozen=True)
class SavePolicy:
    """What to store of each record.

    Attributes
    ----------
    keep_rejected : bool
        Store the images of rejected samples under ``rejected/``; otherwise only their meta
        (verdict and measures for statistics, and so a re-run does not redo them).
    alpha_bits : {8, 16}
        Bit depth of the stored alpha and raw alpha.
    store_raw_alpha : bool
        Store ``record.raw_alpha`` (when given) with the images.
    """

    keep_rejected: bool = False
    alpha_bits: int = 8
    store_raw_alpha: bool = True

    def __post_init__(self):
        if self.alpha_bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {self.alpha_bits!r}.")


@dataclasses.dataclass(frozen=True)
class SaveOutcome:
    """What :func:`save_record` / :func:`save_batch` did with one sample.

    Attributes
    ----------
    sample_id : str
    action : str
        ``"skipped"`` (already complete before the call, :func:`save_batch` only),
        ``"skipped_meanwhile"`` (another writer completed it during the call),
        ``"accepted"``, ``"rejected_images"`` (rejected, images kept under ``rejected/``) or
        ``"rejected_meta"`` (rejected, meta only).
    line : str
        One readable line, e.g. ``"000123: rejected, meta only: multiple_people"``.
    redone : str or None
        When the sample had an unreadable meta file that this call replaced, which file and
        why (``"meta/000123.json is empty"``); the line says so too.
    """

    sample_id: str
    action: str
    line: str
    redone: str | None = None

    @property
    def written(self) -> bool:
        """True when this call wrote the sample."""
        return self.action not in ("skipped", "skipped_meanwhile")

    @property
    def accepted(self) -> bool:
        return self.action == "accepted"

    @property
    def rejected(self) -> bool:
        return self.action in ("rejected_images", "rejected_meta")


#: The name :func:`save_batch` used before records existed; the same class.
BatchOutcome = SaveOutcome


def record_meta(record: SampleRecord) -> dict:
    """The caller's part of a record's meta file (see the module docstring for the order)."""
    meta = dict(record.meta)
    if record.refinement is not None:
        meta["refinement"] = record.refinement
    if record.verdict is not None:
        meta["verdict"] = record.verdict
    if not record.accepted and record.rejected_by is not None:
        meta["rejected_by"] = record.rejected_by
    meta.update(record.trailing_meta)
    return meta


def _reasons(verdict) -> str:
    if isinstance(verdict, Mapping) and verdict.get("reasons"):
        return f": {', '.join(map(str, verdict['reasons']))}"
    return ""


def save_record(writer: DatasetWriter, record: SampleRecord, policy: SavePolicy = SavePolicy()
                ) -> SaveOutcome:
    """Write one record: accepted with its images, or rejected with or without them.

    The caller normally checks :meth:`DatasetWriter.is_complete` first (to skip work); a
    sample another writer completes meanwhile is left alone (``"skipped_meanwhile"``).

    Returns
    -------
    SaveOutcome

    Raises
    ------
    SampleIdError, ValueError
        Bad id, arrays or meta keys (nothing written).
    DatasetError
        The root became unusable (a sub-folder symlinked out, a symlinked manifest).
    OSError
        Writing failed (disk full, permissions); nothing partial is visible.
    """
    store = bool(record.accepted) or policy.keep_rejected
    redone = writer.meta_problem(record.sample_id)
    written = writer.write_sample(
        record.sample_id, record.fg, record.alpha, meta=record_meta(record),
        raw_alpha=record.raw_alpha if (store and policy.store_raw_alpha) else None,
        error_map=record.error_map if store else None, rejected=not record.accepted,
        store_images=store, alpha_bits=policy.alpha_bits, provenance=record.provenance,
        fg_text=record.png_text)
    sample_id = record.sample_id
    if not written.written:
        return SaveOutcome(sample_id, "skipped_meanwhile",
                           f"{sample_id}: skipped (completed meanwhile by another writer)")
    suffix = f" (redone: {redone})" if redone else ""
    if record.accepted:
        return SaveOutcome(sample_id, "accepted", f"{sample_id}: accepted{suffix}", redone)
    action = "rejected_images" if store else "rejected_meta"
    where = "rejected, images kept" if store else "rejected, meta only"
    return SaveOutcome(sample_id, action,
                       f"{sample_id}: {where}{_reasons(record.verdict)}{suffix}", redone)


# --------------------------------------------------------------------------------------------
# Batches (what LDPSaveDataset does with a batch of B images)
# --------------------------------------------------------------------------------------------

def _own_keep(verdict):
    """A verdict's boolean ``keep``, or None when it has none."""
    if isinstance(verdict, Mapping) and isinstance(verdict.get("keep"), bool):
        return verdict["keep"]
    return None


def decide_keep(keep: bool, verdicts: Sequence) -> list[bool]:
    """Accept (True) or reject each image from a batch-wide keep flag and per-image verdicts.

    * An image whose verdict has a boolean ``keep`` follows it, and ``keep`` is taken to be
      the quality gate's "every image passed" flag: a batch with one reject still saves the
      others as accepted.
    * ``keep`` False while no verdict rejects anything is a deliberate switch: every image
      is rejected.
    * Images without a verdict follow ``keep``.
    """
    own = [_own_keep(verdict) for verdict in verdicts]
    veto = not keep and not any(o is False for o in own)
    return [bool(keep) if o is None else (o and not veto) for o in own]


def per_image(value, count: int, name: str) -> list:
    """Split a per-batch JSON value into one entry per image.

    Parameters
    ----------
    value : list, object or None
        A list of ``count`` entries is split (what the refine and gate nodes output for a
        batch); a one-entry list or a single object applies to every image; None gives
        ``count`` Nones.
    count : int
        Batch size.
    name : str
        Input name used in the error message.

    Raises
    ------
    ValueError
        A list whose length is neither 1 nor ``count``.
    """
    if value is None:
        return [None] * count
    if isinstance(value, list):
        if len(value) == count:
            return list(value)
        if len(value) == 1:
            return value * count
        raise ValueError(
            f"{name} holds {len(value)} entries but the batch has {count} image(s); connect the "
            "output of the node that processed this same batch.")
    return [value] * count


def common_meta(*, prompt=None, negative=None, seed=None, attributes=None, models=None,
                tool=None) -> dict:
    """Meta entries shared by every sample of a batch; entries that are None are left out.

    ``seed`` is stored as an int; ``models`` is stored as given (see
    :func:`~.jsonvalues.models_value`).
    """
    values = {"prompt": prompt, "negative": negative,
              "seed": None if seed is None else int(seed), "attributes": attributes,
              "models": models, "tool": tool}
    return {key: value for key, value in values.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class BatchInput:
    """A batch of B images as the save node receives it (every sequence has length B).

    Attributes
    ----------
    ids : sequence of str
        Sample ids (see :func:`~.ids.index_id`).
    foregrounds : sequence of ndarray [H, W, 3]
    alphas : sequence of ndarray [H, W]
    decisions : sequence of bool
        Accept or reject each image (see :func:`decide_keep`).
    raw_alphas, error_maps : sequence or None
    verdicts, refinements : sequence or None
        Per-image verdict and refinement statistics (entries may be None).
    common : mapping
        Meta shared by every sample (see :func:`common_meta`).
    first_index : int
        Sample index of the first image: meta records ``sample_index = first_index + b``,
        ``batch_index = b`` and ``batch_size = B``.
    provenance, png_text
        As :class:`SampleRecord`'s, the same for every image of the batch.
    """

    ids: Sequence[str]
    foregrounds: Sequence
    alphas: Sequence
    decisions: Sequence[bool]
    raw_alphas: Sequence | None = None
    error_maps: Sequence | None = None
    verdicts: Sequence | None = None
    refinements: Sequence | None = None
    common: Mapping = dataclasses.field(default_factory=dict)
    first_index: int = 0
    provenance: Any = None
    png_text: Sequence = ()


def batch_records(batch: BatchInput) -> list[SampleRecord]:
    """One :class:`SampleRecord` per image of ``batch``.

    A rejected sample's record has ``rejected_by`` :data:`VERDICT_REASON` when its own verdict
    said no, else :data:`KEEP_INPUT_REASON`.

    Raises
    ------
    ValueError
        The sequences have different lengths.
    """
    count = len(batch.ids)
    verdicts = list(batch.verdicts) if batch.verdicts is not None else [None] * count
    refinements = list(batch.refinements) if batch.refinements is not None else [None] * count
    optional = [s for s in (batch.raw_alphas, batch.error_maps) if s is not None]
    if not (len(batch.foregrounds) == len(batch.alphas) == len(batch.decisions) == len(verdicts)
            == len(refinements) == count) or any(len(s) != count for s in optional):
        raise ValueError("a batch needs ids, foregrounds, alphas, decisions, verdicts, "
                         f"refinements (and raw alphas / error maps) of one length; got {count} "
                         "ids.")
    records = []
    for b, sample_id in enumerate(batch.ids):
        accepted = bool(batch.decisions[b])
        rejected_by = None
        if not accepted:
            rejected_by = VERDICT_REASON if _own_keep(verdicts[b]) is False else KEEP_INPUT_REASON
        records.append(SampleRecord(
            sample_id, batch.foregrounds[b], batch.alphas[b], accepted,
            meta=dict(batch.common, sample_index=int(batch.first_index) + b, batch_index=b,
                      batch_size=count),
            refinement=refinements[b], verdict=verdicts[b], rejected_by=rejected_by,
            raw_alpha=None if batch.raw_alphas is None else batch.raw_alphas[b],
            error_map=None if batch.error_maps is None else batch.error_maps[b],
            provenance=batch.provenance, png_text=tuple(batch.png_text)))
    return records


def save_batch(writer: DatasetWriter, records: Sequence[SampleRecord],
               policy: SavePolicy = SavePolicy(), *,
               before_each: Callable[[], None] | None = None,
               after_each: Callable[[SaveOutcome], None] | None = None) -> list[SaveOutcome]:
    """Save records in order, skipping ids already complete; one outcome per record.

    Parameters
    ----------
    writer : DatasetWriter
    records : sequence of SampleRecord
        For a node batch, :func:`batch_records` of a :class:`BatchInput`.
    policy : SavePolicy
    before_each, after_each : callable, optional
        Called before each record (e.g. to honour a cancel request) and with each outcome
        (e.g. to advance a progress bar).

    Returns
    -------
    list of SaveOutcome

    Raises
    ------
    DatasetError
        Writing failed (disk full, permissions); the message names the sample, says which
        samples of this call were written completely and that a re-run skips them.
    SampleIdError, ValueError
        Bad ids, arrays or meta (from :meth:`DatasetWriter.write_sample`).
    """
    outcomes: list[SaveOutcome] = []
    done: list[str] = []
    for record in records:
        if before_each is not None:
            before_each()
        sample_id = record.sample_id
        status = writer.status(sample_id)
        if status is not None:
            outcome = SaveOutcome(sample_id, "skipped",
                                  f"{sample_id}: skipped (already complete, {status})")
        else:
            try:
                outcome = save_record(writer, record, policy)
            except OSError as error:
                raise _write_failed(writer, sample_id, error, done) from error
            if outcome.written:
                done.append(sample_id)
        outcomes.append(outcome)
        if after_each is not None:
            after_each(outcome)
    return outcomes


def _write_failed(writer: DatasetWriter, sample_id: str, error: OSError,
                  done: list[str]) -> DatasetError:
    full = " (disk full?)" if is_disk_full(error) else ""
    kept = f" Samples {', '.join(done)} were written completely." if done else ""
    return DatasetError(
        f"cannot write sample {sample_id} to {writer.root}: {error.strerror or error}{full}. "
        f"Nothing already in the dataset was lost and no partial file is visible.{kept} "
        "Free space or fix the permissions and queue again: complete ids are skipped.")
