"""What made each sample: the ComfyUI API graph, or the ``refine`` / ``key`` settings, stored
once per dataset and referenced from every sample's meta by content hash.

Thousands of samples share one graph (a batch) or one set of settings (a CLI run), so the
document itself is stored once as ``<root>/provenance/<sha256>.json`` (the hash of the file's
bytes, so ``sha256sum`` checks it) and each meta file records::

    "provenance": {"kind": "comfyui_api_graph", "sha256": "<hex>",
                   "file": "provenance/<hex>.json"}

next to ``tool`` (name and pack version). Kinds:

``comfyui_api_graph``    the API graph ComfyUI ran (the ``LDPSaveDataset`` node's hidden
                         ``PROMPT`` input), exactly as queued: the file is a graph that
                         ``ld-portrait queue`` accepts (``ld-portrait dataset graph ROOT ID``)
``ld-portrait_settings`` ``{"command": "refine", "command_line": {...}, "parameters":
                         {...}}``: the parsed command line and the parameters resolved
                         from it

Documents are written like every other dataset file (private temporary file, rename) before
the first sample that refers to them; two writers storing the same document write the same
bytes under the same name, so neither can spoil the other's. A document nobody refers to (a
run killed before its first sample) is harmless.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Mapping

from .jsonvalues import to_jsonable
from .layout import DatasetError

__all__ = ["PROVENANCE_DIR", "GRAPH_KIND", "SETTINGS_KIND", "META_KEY", "ProvenanceDocument",
           "provenance_document", "settings_document", "store_provenance", "read_provenance",
           "ProvenanceError", "SampleProvenance", "sample_provenance", "api_graph_as_queued",
           "HOST_EXECUTION_KEYS"]

PROVENANCE_DIR = "provenance"
#: ``kind`` of a ComfyUI API graph.
GRAPH_KIND = "comfyui_api_graph"
#: ``kind`` of a command line run's settings.
SETTINGS_KIND = "ld-portrait_settings"
#: Meta key holding the reference.
META_KEY = "provenance"
_HEX = re.compile(r"[0-9a-f]{64}")


#: Keys a host adds to the nodes of the graph it runs: ``is_changed`` holds the nodes'
#: IS_CHANGED results (NaN for "always run"). A host trusts that key when a client sends it,
#: so a stored graph that kept it could be served from the cache instead of running again.
HOST_EXECUTION_KEYS = ("is_changed",)


def api_graph_as_queued(graph: Mapping) -> dict:
    """``graph`` (the API graph a host hands to a node as ``PROMPT``) without the execution
    state the host added to its nodes (:data:`HOST_EXECUTION_KEYS`): the graph as queued."""
    return {node_id: ({key: value for key, value in node.items() if key not in HOST_EXECUTION_KEYS}
                      if isinstance(node, Mapping) else node)
            for node_id, node in graph.items()}


class ProvenanceError(DatasetError):
    """A provenance reference or document that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class ProvenanceDocument:
    """A document ready to store: its bytes and their hash.

    Attributes
    ----------
    kind : str
        :data:`GRAPH_KIND` or :data:`SETTINGS_KIND`.
    payload : bytes
        The file's content (JSON, keys sorted, so equal documents give equal bytes).
    sha256 : str
        Hex SHA-256 of ``payload``.
    """

    kind: str
    payload: bytes
    sha256: str

    @property
    def relative_path(self) -> str:
        return f"{PROVENANCE_DIR}/{self.sha256}.json"

    def reference(self) -> dict:
        """What a sample's meta records under :data:`META_KEY`."""
        return {"kind": self.kind, "sha256": self.sha256, "file": self.relative_path}


def provenance_document(kind: str, content: Any) -> ProvenanceDocument:
    """A :class:`ProvenanceDocument` of ``content`` (anything JSON-like; numpy values are
    converted).

    Raises
    ------
    ValueError
        ``content`` cannot be stored as JSON.
    """
    value = to_jsonable(content, "provenance")
    payload = (json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1, allow_nan=False)
               + "\n").encode("utf-8")
    return ProvenanceDocument(kind, payload, hashlib.sha256(payload).hexdigest())


def settings_document(command: str, command_line: Mapping | None,
                      parameters: Mapping) -> ProvenanceDocument:
    """The settings of an ``ld-portrait`` run: the sub-command, its parsed command line (every
    option with its value, defaults included; None when called as a library) and the
    parameters resolved from it (every refinement / keying / gate value, defaults filled in,
    so the record stays true when a later version changes a default)."""
    return provenance_document(SETTINGS_KIND, {
        "command": command,
        "command_line": None if command_line is None else dict(command_line),
        "parameters": dict(parameters)})


def store_provenance(root, document: ProvenanceDocument, *, durable: bool = True) -> Path:
    """Write ``document`` to ``<root>/provenance/<sha256>.json`` unless it is there already;
    returns its path.

    Raises
    ------
    DatasetError
        The provenance folder resolves outside ``root`` (a symlink).
    OSError
        Writing failed (disk full, permissions).
    """
    from .safeio import write_file_atomic

    root = Path(root).resolve()
    folder = root / PROVENANCE_DIR
    folder.mkdir(exist_ok=True)
    resolved = folder.resolve(strict=True)
    if resolved.parent != root:
        raise DatasetError(f"{folder} resolves to {resolved}, outside the dataset root {root} "
                           "(a symlink?); refusing to write there.")
    path = resolved / f"{document.sha256}.json"
    try:
        if path.is_file() and not path.is_symlink() and \
                hashlib.sha256(path.read_bytes()).hexdigest() == document.sha256:
            return path
    except OSError:
        pass  # unreadable: write it again
    return write_file_atomic(path, document.payload, durable=durable)


def _read_reference(root, reference: Mapping) -> tuple[str, bytes, Any]:
    if not isinstance(reference, Mapping) or not isinstance(reference.get("sha256"), str) \
            or not _HEX.fullmatch(reference["sha256"]):
        raise ProvenanceError(f"the meta's {META_KEY!r} entry is not a reference with a sha256 "
                              f"(got {reference!r}).")
    digest = reference["sha256"]
    path = Path(root) / PROVENANCE_DIR / f"{digest}.json"
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ProvenanceError(
            f"{path} is missing: the document this sample refers to was deleted or not copied "
            f"with the dataset (copy the {PROVENANCE_DIR}/ folder too).") from None
    except OSError as error:
        raise ProvenanceError(f"cannot read {path}: {error.strerror or error}") from None
    if hashlib.sha256(payload).hexdigest() != digest:
        raise ProvenanceError(f"{path} does not match its sha256 (it was edited or damaged).")
    try:
        content = json.loads(payload)
    except ValueError as error:
        raise ProvenanceError(f"{path} is not JSON ({error}).") from None
    return str(reference.get("kind", "")), payload, content


def read_provenance(root, reference: Mapping) -> tuple[str, Any]:
    """``(kind, content)`` of the document a meta's ``provenance`` reference names.

    Raises
    ------
    ProvenanceError
        The reference is malformed, the file is missing, or its content does not match the
        recorded hash (the message says which and what to do).
    """
    kind, _, content = _read_reference(root, reference)
    return kind, content


@dataclasses.dataclass(frozen=True)
class SampleProvenance:
    """What :func:`sample_provenance` found for one sample.

    Attributes
    ----------
    sample_id : str
    meta : dict
        The sample's meta (accepted or rejected).
    kind : str
        :data:`GRAPH_KIND` or :data:`SETTINGS_KIND`.
    payload : bytes
        The stored document's bytes (checked against its hash).
    content : object
        ``payload`` parsed.
    """

    sample_id: str
    meta: dict
    kind: str
    payload: bytes
    content: Any


def sample_provenance(root, sample_id: str) -> SampleProvenance:
    """The document that made ``sample_id`` (accepted or rejected) in the dataset ``root``.

    ``sample_id`` may also be a sample index (``123`` for ``000123``) when no sample has
    that exact id.

    Raises
    ------
    DatasetError
        ``root`` is not a dataset.
    ProvenanceError
        No such sample, its meta records no provenance (written before this was recorded, or
        with ComfyUI's ``--disable-metadata``), or the document is missing or damaged.
    """
    from .ids import index_id, validate_id
    from .layout import META_DIR, REJECTED_DIR, SampleIdError
    from .safeio import MetaFileError, read_meta_file, require_dataset

    root = require_dataset(root)
    candidates = [str(sample_id)]
    if str(sample_id).isdigit():
        candidates.append(index_id(int(sample_id)))
    meta = None
    for candidate in dict.fromkeys(candidates):
        try:
            validate_id(candidate)
        except SampleIdError as error:
            raise ProvenanceError(str(error)) from None
        for prefix in ("", f"{REJECTED_DIR}/"):
            try:
                meta = read_meta_file(root / prefix / META_DIR / f"{candidate}.json", candidate)
            except FileNotFoundError:
                continue
            except MetaFileError as error:
                raise ProvenanceError(f"{prefix}{META_DIR}/{candidate}.json {error}.") from None
            sample_id = candidate
            break
        if meta is not None:
            break
    if meta is None:
        raise ProvenanceError(f"{root} has no complete sample {sample_id!r} (no "
                              f"{META_DIR}/{sample_id}.json, accepted or rejected).")
    if META_KEY not in meta:
        raise ProvenanceError(
            f"sample {sample_id} records no graph or settings: it was written by a version "
            "that did not record them, by a ComfyUI started with --disable-metadata, or by a "
            "client that sent no graph. Its fg PNG may still hold the editor graph.")
    kind, payload, content = _read_reference(root, meta[META_KEY])
    return SampleProvenance(str(sample_id), meta, kind, payload, content)
