"""Workflow graphs for the queue: read and check an API-format graph, find what the queue
touches in it, and write each job's copy (see the package docstring for the rewriting rules).

Pure Python; contacts no server and writes no file.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from ...dataset.jsonvalues import json_depth
from ...prompting import sample_seed

__all__ = ["TEMPLATE_CLASS", "SAVE_CLASS", "SEED_INPUTS", "COUNTER_CLASSES", "MAX_SEED",
           "MAX_SAMPLE_INDEX", "MAX_NESTING", "MAX_WORKFLOW_BYTES", "WorkflowError",
           "GraphInfo", "Rewrite", "check_api_graph", "load_workflow", "inspect_graph",
           "rewrite_graph", "job_seed", "node_order"]

TEMPLATE_CLASS = "LDPPromptTemplate"
SAVE_CLASS = "LDPSaveDataset"
#: Input names treated as sampler seeds (KSampler uses ``seed``, KSamplerAdvanced ``noise_seed``).
SEED_INPUTS = ("seed", "noise_seed")
#: Counter nodes whose ``value`` is set when they feed ``LDPSaveDataset.sample_index``.
COUNTER_CLASSES = ("PrimitiveInt",)
#: Largest seed ComfyUI's samplers accept.
MAX_SEED = 2**64 - 1
#: Sample indices are below this: the nodes' ``index``/``sample_index`` maximum (the frontend
#: stores widget values as JavaScript numbers, exact up to 2**53).
MAX_SAMPLE_INDEX = 2**53
#: Deepest nesting of objects and lists accepted in a workflow. An API graph is about four
#: levels deep (graph, node, inputs, link list); far deeper input is not a workflow, and
#: copying or sending it would end in a RecursionError.
MAX_NESTING = 64
#: Largest workflow file read (an API graph is a few hundred KB at most).
MAX_WORKFLOW_BYTES = 64 * 1024 * 1024


class WorkflowError(ValueError):
    """The workflow file or graph cannot be queued; the message says why and what to do."""


def _too_deep(source: str) -> WorkflowError:
    return WorkflowError(
        f"{source} is nested more than {MAX_NESTING} levels deep; an API-format workflow is a "
        "flat object of nodes (node -> inputs -> values). Export the workflow again with "
        "Export (API).")


def check_api_graph(data: Any, source: str = "workflow") -> dict:
    """Return ``data`` as an API-format graph, or raise :class:`WorkflowError`.

    Accepts ``{node id: {"class_type": str, "inputs": dict, ...}}`` and a saved ``/prompt``
    request body ``{"prompt": {...}, ...}`` (unwrapped). A UI-format workflow (``nodes`` and
    ``links`` lists, what *Save* writes) is refused with a hint to use *Export (API)*, and so
    is anything nested more than :data:`MAX_NESTING` levels.
    """
    if json_depth(data, MAX_NESTING + 1) > MAX_NESTING + 1:  # +1: the request wrapper
        raise _too_deep(source)
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and \
            "class_type" not in data["prompt"] and "nodes" not in data:
        data = data["prompt"]
    if json_depth(data, MAX_NESTING) > MAX_NESTING:
        raise _too_deep(source)
    if isinstance(data, dict) and ("nodes" in data or "links" in data) and \
            isinstance(data.get("nodes", data.get("links")), list):
        raise WorkflowError(
            f"{source} is a UI-format workflow (it has 'nodes' and 'links'), but the queue needs "
            "the API format. In ComfyUI use Workflow > Export (API) (older versions: enable dev "
            "mode options in the settings, then 'Save (API Format)'), or use the graphs in "
            "workflows/api/.")
    if not isinstance(data, dict) or not data:
        kind = "an empty object" if isinstance(data, dict) else type(data).__name__
        raise WorkflowError(
            f"{source} is {kind}, not an API-format workflow (a JSON object mapping node ids "
            "to {\"class_type\": ..., \"inputs\": {...}}).")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(
                f"{source}: node {node_id!r} has no 'class_type' string; this does not look like "
                "an API-format workflow (use Export (API) in ComfyUI).")
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"{source}: node {node_id!r} ({node['class_type']}) has "
                                "'inputs' that is not an object.")
    return data


def load_workflow(path) -> dict:
    """Read an API-format workflow JSON file; :class:`WorkflowError` when it is not one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_WORKFLOW_BYTES:
            raise WorkflowError(
                f"workflow file {path} is {size / 2**20:.0f} MiB; an API-format workflow is far "
                f"smaller (limit {MAX_WORKFLOW_BYTES // 2**20} MiB). Is this the right file?")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise WorkflowError(f"cannot read workflow file {path}: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise WorkflowError(
            f"{path} is not JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "pass an API-format workflow saved with Export (API).") from None
    except RecursionError:  # the JSON decoder's own depth guard
        raise _too_deep(str(path)) from None
    return check_api_graph(data, str(path))


def _is_literal_int(value) -> bool:
    # bool is an int subclass; a link is a [node id, output index] list.
    return isinstance(value, int) and not isinstance(value, bool)


def node_order(node_id: str):
    """Sort key: numeric node ids in numeric order, then the others by name."""
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


@dataclasses.dataclass(frozen=True)
class GraphInfo:
    """What the queue will touch in a graph (see :func:`inspect_graph`)."""

    template_nodes: tuple[str, ...]
    save_nodes: tuple[str, ...]
    sampler_seeds: tuple[tuple[str, str], ...]  # (node id, input name) holding literal ints
    template_seed: int | None  # literal seed of the first template node, if any
    dataset_names: tuple[str, ...]  # literal dataset_name values of the save nodes
    class_types: tuple[str, ...]


def inspect_graph(graph: Mapping) -> GraphInfo:
    """Find the template, save and literal sampler-seed inputs of an API graph."""
    templates, saves, seeds, names = [], [], [], []
    template_seed = None
    for node_id in sorted(graph, key=node_order):
        node = graph[node_id]
        inputs = node.get("inputs", {})
        if node["class_type"] == TEMPLATE_CLASS:
            templates.append(node_id)
            if template_seed is None and _is_literal_int(inputs.get("seed")):
                template_seed = int(inputs["seed"])
            continue
        if node["class_type"] == SAVE_CLASS:
            saves.append(node_id)
            if isinstance(inputs.get("dataset_name"), str):
                names.append(inputs["dataset_name"])
        for name in SEED_INPUTS:
            if _is_literal_int(inputs.get(name)):
                seeds.append((node_id, name))
    return GraphInfo(tuple(templates), tuple(saves), tuple(seeds), template_seed, tuple(names),
                     tuple(sorted({node["class_type"] for node in graph.values()})))


def job_seed(base_seed: int, index: int) -> int:
    """Per-job sampler seed in ``[0, 2**53)`` from ``(base_seed, index)``.

    The same value :func:`comfyui_ld_portrait.prompting.sample_seed` gives and the
    ``LDPPromptTemplate`` node outputs as ``seed``, so a sampler whose seed is a literal gets
    exactly the seed that a sampler wired to the template would get (and that the save node
    records). Hashed, so neighbouring base seeds do not share noise.
    """
    return sample_seed(int(base_seed), int(index))


_MISSING = object()


@dataclasses.dataclass(frozen=True)
class Rewrite:
    """One input changed in a job's graph."""

    node_id: str
    class_type: str
    input_name: str
    old: Any
    new: Any

    def __str__(self) -> str:
        old = "(missing)" if self.old is _MISSING else repr(self.old)
        return f"node {self.node_id} ({self.class_type}): {self.input_name} {old} -> {self.new!r}"


def _linked_counter(graph: Mapping, source) -> str | None:
    """The id of the counter node an input is linked to (``[node_id, slot]``), if any."""
    if isinstance(source, list) and len(source) == 2 and str(source[0]) in graph:
        node = graph[str(source[0])]
        if isinstance(node, Mapping) and node.get("class_type") in COUNTER_CLASSES:
            return str(source[0])
    return None


def rewrite_graph(graph: Mapping, index: int, *, base_seed: int, keep_sampler_seed: bool = False,
                  dataset_name: str | None = None, allow_no_template: bool = False
                  ) -> tuple[dict, list[Rewrite]]:
    """A job's graph for sample ``index``: a deep copy with the queue's inputs set.

    Parameters
    ----------
    graph : mapping
        API-format graph (checked by :func:`check_api_graph`); not modified.
    index : int
        Sample index, ``0 <= index < MAX_SAMPLE_INDEX``.
    base_seed : int
        Base seed given to the template nodes; sampler seeds become ``job_seed(base_seed, index)``.
    keep_sampler_seed : bool
        Leave literal ``seed``/``noise_seed`` inputs of other nodes as they are.
    dataset_name : str, optional
        Also set ``dataset_name`` on every ``LDPSaveDataset`` node.
    allow_no_template : bool
        Accept a graph without an ``LDPPromptTemplate`` node (otherwise :class:`WorkflowError`).

    Returns
    -------
    (dict, list of Rewrite)
        The new graph and every input that was set (also when the value did not change).
    """
    if isinstance(index, bool) or not isinstance(index, int) or \
            not 0 <= index < MAX_SAMPLE_INDEX:
        raise ValueError(f"sample index must be an integer >= 0 and < 2**53, got {index!r}.")
    info = inspect_graph(graph)
    if not info.template_nodes and not allow_no_template:
        raise WorkflowError(
            f"the graph has no {TEMPLATE_CLASS} node, so every job would generate the same "
            f"prompt. Add a {TEMPLATE_CLASS} node feeding the text encoders, or pass "
            "--allow-no-template if the graph varies per job some other way.")
    new_graph = copy.deepcopy(dict(graph))
    changes: list[Rewrite] = []

    def set_input(node_id: str, name: str, value) -> None:
        node = new_graph[node_id]
        inputs = node.setdefault("inputs", {})
        old = inputs.get(name, _MISSING)
        changes.append(Rewrite(node_id, node["class_type"], name, old, value))
        inputs[name] = value

    for node_id in info.template_nodes:
        set_input(node_id, "index", int(index))
        set_input(node_id, "seed", int(base_seed))
    for node_id in info.save_nodes:
        source = new_graph[node_id].get("inputs", {}).get("sample_index")
        counter = _linked_counter(new_graph, source)
        if counter is not None:
            # A counter node (core PrimitiveInt) feeding the sample index usually feeds the
            # loader's file index too: set the counter so that every node it feeds follows.
            set_input(counter, "value", int(index))
        else:
            set_input(node_id, "sample_index", int(index))
        if dataset_name is not None:
            set_input(node_id, "dataset_name", dataset_name)
    if not keep_sampler_seed:
        seed = job_seed(base_seed, index)
        for node_id, name in info.sampler_seeds:
            set_input(node_id, name, seed)
    return new_graph, changes
