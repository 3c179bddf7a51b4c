"""Headless queueing: keep one or more ComfyUI servers busy until a dataset is complete.

``ld-portrait queue WORKFLOW_API_JSON --dataset ROOT --range A:B --server URL ...`` takes an
API-format workflow (what ComfyUI's *Export (API)* writes: ``{node id: {"class_type": ...,
"inputs": {...}}}``), makes one job per sample index, submits the jobs to the servers over
their HTTP API (``POST /prompt``), keeps at most ``--in-flight`` of them queued per server,
follows them (``GET /queue`` and ``GET /history/<prompt id>``), retries failures a bounded
number of times, skips samples already complete in the dataset, shows progress with an ETA,
stops cleanly on Ctrl-C and prints a summary. Standard library only (``http.client``,
``threading``); HTTP proxies from the environment are not used.

What is rewritten in each job's copy of the graph
-------------------------------------------------
For sample index ``i`` with base seed ``S`` (``--seed``; without it the literal ``seed`` of the
first ``LDPPromptTemplate`` node in the file, else 0). Nothing else changes, the workflow file
is never modified, and the request also carries a fresh ``prompt_id`` and the ``client_id``.

1. Every ``LDPPromptTemplate`` node: ``index = i`` and ``seed = S`` (the node derives the
   per-sample prompt and seed from them itself). A graph without one is refused unless
   ``--allow-no-template``.
2. Every ``LDPSaveDataset`` node: ``sample_index = i`` (it saves under id ``index_id(i)``, e.g.
   ``000123``), and ``dataset_name = NAME`` only when ``--dataset-name NAME`` is given. When
   ``sample_index`` is linked to a counter node (core ``PrimitiveInt``, as in the shipped
   refine-a-folder workflow, where it also drives the loader's file index), the counter's
   ``value`` is set to ``i`` instead, so everything it feeds follows.
3. Unless ``--keep-sampler-seed``: in every other node, a ``seed`` or ``noise_seed`` input that
   holds a literal integer (``KSampler``, ``KSamplerAdvanced``, ``RandomNoise``, ...) becomes
   :func:`job_seed` ``(S, i)`` -- the seed the template node itself outputs for sample ``i`` --
   so every sample gets its own noise. Inputs connected to another node (e.g. the template's
   seed output, the recommended wiring) are left alone.

Job life cycle and failure handling
-----------------------------------
* **Resume**: indices whose id is complete in ``--dataset ROOT`` (accepted or rejected, as
  :class:`~comfyui_ld_portrait.dataset.DatasetWriter` reports) are skipped, at start and again
  just before each submission. Without ``--dataset`` (remote servers) nothing is skipped.
* **Validation errors** (HTTP 400 with ``error``/``node_errors``) fail the job at once with
  the node's message; they are not retried because the same graph fails the same way.
* **Execution errors** (history ``status.status_str == "error"``, or an ``execution_error`` /
  ``execution_interrupted`` message), a job that **vanishes** from a server (restarted), a job
  running longer than ``--timeout``, and unexpected HTTP answers count as a failed attempt;
  the job is retried, on another server when one is healthy, until it has failed
  ``1 + --retries`` times. A retry waits ``backoff`` seconds after the first failure, doubling
  per further failure up to ``backoff_max`` (2 s .. 60 s by default).
* **Hung jobs**: a job that timed out is not cancelled (``/interrupt`` could hit another
  client's job), so its server gets no new work while it is still queued or running there.
  If it is still there ``--give-up-after`` seconds after it timed out (``--timeout +
  --give-up-after`` after it started), the server counts as stuck and is not used any more;
  when no usable server is left the run ends and the remaining jobs count as failed
  ("no usable server left ... server stuck").
* **Unreachable servers** (refused, reset, no answer): the server is marked unhealthy with an
  exponential back-off and the job goes back to the queue for any server (this does not use
  up a retry: the job never ran). Jobs in flight on a server that stays unreachable longer than
  ``server_down_after`` are redistributed (that uses up a retry). When no server has answered
  for ``--give-up-after`` seconds the run ends and the rest counts as failed.
* **Internal errors**: an unexpected exception in a server's worker is logged and handled like
  a server error (the server pauses); a job it had taken goes back to the queue (at most
  ``1 + --retries`` times). If every worker has stopped, the run ends ("gave up").
* **Verification**: after ComfyUI reports success the sample must appear in ROOT within a few
  seconds: accepted -> done, under ``rejected/`` -> rejected (the quality gate said no), absent
  -> failed (not retried: ComfyUI would serve the same graph from its cache).
* **Ctrl-C** (or :meth:`QueueRunner.stop`): nothing new is submitted; jobs in flight get
  ``--grace`` seconds to finish; a second Ctrl-C stops waiting. Jobs left on a server may still
  complete there; a re-run skips them.
* Exit codes: 0 everything done (or rejected, or skipped), 1 some failed, 2 usage errors,
  130 interrupted.

Duplicate execution is harmless: if a connection drops after a server accepted a job, the job
may run twice; the dataset writer keeps the first copy and never duplicates a manifest line.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import http.client
import json
import math
import signal
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urlsplit

from ...dataset import META_DIR, REJECTED_DIR, DatasetError, index_id, list_sample_ids
from ...prompting import sample_seed

__all__ = [
    "TEMPLATE_CLASS",
    "SAVE_CLASS",
    "SEED_INPUTS",
    "WorkflowError",
    "QueueSetupError",
    "Rewrite",
    "GraphInfo",
    "QueueOptions",
    "QueueRunner",
    "QueueSummary",
    "load_workflow",
    "check_api_graph",
    "inspect_graph",
    "rewrite_graph",
    "job_seed",
    "normalize_server_url",
    "parse_range",
    "format_validation_error",
    "parse_history_entry",
    "add_queue_arguments",
    "run_queue_command",
    "main",
    "QUEUE_HELP",
]

TEMPLATE_CLASS = "LDPPromptTemplate"
SAVE_CLASS = "LDPSaveDataset"
#: Input names treated as sampler seeds (KSampler uses ``seed``, KSamplerAdvanced ``noise_seed``).
SEED_INPUTS = ("seed", "noise_seed")
#: Largest seed ComfyUI's samplers accept.
MAX_SEED = 2**64 - 1

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

QUEUE_HELP = "submit an API workflow to ComfyUI servers, one job per sample index"


class WorkflowError(ValueError):
    """The workflow file or graph cannot be queued; the message says why and what to do."""


class QueueSetupError(RuntimeError):
    """No server can run the graph (e.g. the node pack is missing on every server)."""


# --------------------------------------------------------------------------------------------
# Workflow graphs
# --------------------------------------------------------------------------------------------

def check_api_graph(data: Any, source: str = "workflow") -> dict:
    """Return ``data`` as an API-format graph, or raise :class:`WorkflowError`.

    Accepts ``{node id: {"class_type": str, "inputs": dict, ...}}`` and a saved ``/prompt``
    request body ``{"prompt": {...}, ...}`` (unwrapped). A UI-format workflow (``nodes`` and
    ``links`` lists, what *Save* writes) is refused with a hint to use *Export (API)*.
    """
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and \
            "class_type" not in data["prompt"] and "nodes" not in data:
        data = data["prompt"]
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
    return check_api_graph(data, str(path))


def _is_literal_int(value) -> bool:
    # bool is an int subclass; a link is a [node id, output index] list.
    return isinstance(value, int) and not isinstance(value, bool)


def _node_order(node_id: str):
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
    for node_id in sorted(graph, key=_node_order):
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


_MISSING = object()


COUNTER_CLASSES = ("PrimitiveInt",)


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
    """A job's graph for sample ``index``: a deep copy with the inputs in the module docstring set.

    Parameters
    ----------
    graph : mapping
        API-format graph (checked by :func:`check_api_graph`); not modified.
    index : int
        Sample index, >= 0.
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
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"sample index must be an integer >= 0, got {index!r}.")
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


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

def parse_range(text: str) -> range:
    """``"100:200"`` -> ``range(100, 200)`` (the end is excluded, as in Python slices)."""
    start, sep, stop = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        first, end = int(start), int(stop)
    except ValueError:
        raise ValueError(f"--range must look like A:B with whole numbers (B excluded), "
                         f"got {text!r}.") from None
    if first < 0 or end < first:
        raise ValueError(f"--range {text!r} must satisfy 0 <= A <= B.")
    return range(first, end)


def normalize_server_url(text: str) -> str:
    """``"127.0.0.1:8188"`` -> ``"http://127.0.0.1:8188"``; keeps a path prefix (reverse proxy)."""
    raw = str(text).strip()
    if not raw:
        raise ValueError("--server is empty; give a URL such as http://127.0.0.1:8188.")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server {text!r}: only http:// and https:// URLs are supported.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"server {text!r} has an invalid port.") from None
    if not parts.hostname:
        raise ValueError(f"server {text!r} has no host name.")
    if parts.query or parts.fragment:
        raise ValueError(f"server {text!r}: leave out '?...' and '#...'.")
    del port
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


# --------------------------------------------------------------------------------------------
# Reading ComfyUI's answers
# --------------------------------------------------------------------------------------------

def _short(text, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_validation_error(body) -> str:
    """One readable line from ComfyUI's HTTP 400 body ``{"error": ..., "node_errors": ...}``.

    ``error`` is ``{"type", "message", "details", "extra_info"}`` (a plain string on old hosts);
    ``node_errors`` maps node ids to ``{"errors": [{"message", "details"}], "class_type"}``.
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            return _short(body.decode("utf-8", "replace")) or "(empty answer)"
    if not isinstance(body, dict):
        return _short(body)
    parts = []
    error = body.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or "validation failed")
        details = str(error.get("details") or "").strip()
        parts.append(f"{message} ({details})" if details else message)
    elif error:
        parts.append(str(error))
    node_errors = body.get("node_errors") or {}
    if isinstance(node_errors, dict):
        for node_id in sorted(node_errors, key=_node_order):
            entry = node_errors[node_id]
            if not isinstance(entry, dict):
                continue
            class_type = entry.get("class_type", "?")
            for item in entry.get("errors") or []:
                if isinstance(item, dict):
                    message = str(item.get("message", "")).strip()
                    details = str(item.get("details", "")).strip()
                    text = f"{message}: {details}" if message and details else message or details
                else:
                    text = str(item)
                parts.append(f"node {node_id} ({class_type}): {text}")
    return _short("; ".join(parts) or "validation failed (no details given)", 600)


def parse_history_entry(entry: Mapping) -> tuple[bool, str]:
    """``(succeeded, reason)`` from one ``/history/<id>`` entry.

    Failure: ``status.status_str == "error"`` or an ``execution_error`` /
    ``execution_interrupted`` message (the reason names the node and the exception). Entries
    without ``status`` (very old hosts) count as success.
    """
    status = entry.get("status") if isinstance(entry, Mapping) else None
    if not isinstance(status, Mapping):
        return True, ""
    messages = status.get("messages") or []
    for item in messages:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            continue
        kind, data = item
        data = data if isinstance(data, Mapping) else {}
        if kind == "execution_error":
            node = f"node {data.get('node_id', '?')} ({data.get('node_type', '?')})"
            exc_type = data.get("exception_type") or "error"
            return False, _short(f"execution error in {node}: {exc_type}: "
                                 f"{str(data.get('exception_message') or '').strip()}")
        if kind == "execution_interrupted":
            return False, "execution was interrupted on the server"
    if status.get("status_str") == "error":
        return False, "the server reported an error (no details in its history)"
    return True, ""


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

class _Unreachable(Exception):
    """Transport failure: refused, reset, closed without answer, timed out."""


def _describe_transport_error(error: BaseException, timeout: float) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return "connection reset"
    return _short(f"{type(error).__name__}: {error}", 160)


class _Http:
    """One request per connection (no keep-alive state to go stale when a server restarts)."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, payload=None) -> tuple[int, bytes]:
        factory = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        connection = factory(self.host, self.port, timeout=self.timeout)
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(method, self.prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            raise _Unreachable(_describe_transport_error(error, self.timeout)) from error
        finally:
            connection.close()

    def get_json(self, path: str) -> Any:
        """JSON of a 200 answer; :class:`_Unreachable` for anything else."""
        status, data = self.request("GET", path)
        if status != 200:
            raise _Unreachable(f"GET {path} answered HTTP {status}")
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            raise _Unreachable(f"GET {path} answered something that is not JSON") from None


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class QueueOptions:
    """Settings of a queue run (the CLI flags; the rest are for tests and tuning).

    Times are in seconds.
    """

    in_flight: int = 2             # jobs queued on one server at once (1 running + 1 waiting)
    retries: int = 2               # extra attempts after a failed one
    timeout: float | None = None   # a job running longer than this on a server counts as failed
    seed: int | None = None        # base seed (None: the template node's literal seed, else 0)
    client_id: str | None = None   # sent with every prompt (None: a fresh uuid4 per run)
    keep_sampler_seed: bool = False
    allow_no_template: bool = False
    dataset_name: str | None = None
    verify: bool = True            # check that completed samples appear in the dataset root
    poll_interval: float = 1.0
    http_timeout: float = 30.0     # one HTTP request
    grace: float = 60.0            # after stop(): how long to wait for jobs in flight
    backoff: float = 2.0           # first pause after a server error and before a retry;
    #                                doubles per further error/failure up to backoff_max
    backoff_max: float = 60.0
    server_down_after: float = 30.0  # unreachable this long: its jobs in flight go elsewhere
    give_up_after: float = 600.0   # no server answered this long: end the run; a timed-out
    #                                job still on its server this long after: server is stuck
    max_failures: int = 0          # stop submitting after this many failed jobs (0: no limit)
    verify_wait: float = 3.0       # how long a finished sample may take to appear on disk
    preflight: bool = True         # check /object_info for the graph's node types first
    status_every: float = 30.0     # progress line period when stderr is not a terminal

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if isinstance(self.in_flight, bool) or not isinstance(self.in_flight, int) or \
                self.in_flight < 1:
            raise ValueError(f"--in-flight must be a whole number >= 1, got {self.in_flight!r}.")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"--retries must be a whole number >= 0, got {self.retries!r}.")
        if self.seed is not None and not (0 <= int(self.seed) <= MAX_SEED):
            raise ValueError(f"--seed must be between 0 and 2**64-1, got {self.seed}.")
        if self.max_failures < 0:
            raise ValueError(f"--max-failures must be >= 0, got {self.max_failures}.")
        for name in ("poll_interval", "http_timeout", "backoff", "backoff_max"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number > 0, got {value!r}.")
        for name in ("grace", "server_down_after", "give_up_after", "verify_wait",
                     "status_every"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"--timeout must be > 0 seconds, got {self.timeout!r}.")


@dataclasses.dataclass(eq=False)
class _Job:
    index: int
    sample_id: str
    attempts: int = 0              # times a server accepted it
    failures: list = dataclasses.field(default_factory=list)  # one reason per failed attempt
    prompt_id: str | None = None
    server: str | None = None
    running_since: float | None = None
    missing_polls: int = 0
    avoid: str | None = None       # server it last failed on
    ready_at: float = 0.0          # not submitted before this time (back-off before a retry)
    internal_errors: int = 0       # times a worker crashed while it held the job
    outcome: str | None = None     # done / rejected / skipped / failed / unfinished
    reason: str = ""
    verify_deadline: float = 0.0
    finished_on: Any = None        # the _Server that reported success


class _Server:
    def __init__(self, url: str, timeout: float):
        self.url = url
        self.http = _Http(url, timeout)
        self.enabled = True
        self.inflight: dict[str, _Job] = {}
        # Our timed-out prompts still on the server (prompt id -> (monotonic time it timed out,
        # sample id)): while any is there the server gets no new work.
        self.stuck: dict[str, tuple[float, str]] = {}
        self.consecutive_errors = 0
        self.unhealthy_until = 0.0
        self.last_ok = time.monotonic()
        self.last_error = ""
        self.counts = dict(submitted=0, done=0, rejected=0, failed_attempts=0,
                           connection_errors=0, timeouts=0, validation_errors=0)

    def healthy(self, now: float) -> bool:
        return self.enabled and now >= self.unhealthy_until


class _DatasetProbe:
    """Read-only questions about the dataset root; creates and locks nothing (``--dry-run``
    included).

    The meta file of a sample is written last and atomically by
    :class:`~comfyui_ld_portrait.dataset.DatasetWriter`, so its presence (``meta/<id>.json``
    or ``rejected/meta/<id>.json``) means the sample is complete. :meth:`complete_ids` lists
    the meta folders (once, for the initial skip set); :meth:`status` checks the two paths of
    one id directly, so asking before each submission stays cheap on a large dataset.
    """

    def __init__(self, root):
        self.root = Path(root).expanduser()

    def complete_ids(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return set(list_sample_ids(self.root)) | set(list_sample_ids(self.root, rejected=True))

    def status(self, sample_id: str) -> str | None:
        """``"accepted"``, ``"rejected"`` or None (not complete, or no root yet)."""
        name = f"{sample_id}.json"
        if (self.root / META_DIR / name).is_file():
            return "accepted"
        if (self.root / REJECTED_DIR / META_DIR / name).is_file():
            return "rejected"
        return None


def _format_seconds(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Console:
    """Progress line plus log messages on one stream, safe from several threads.

    On a terminal the bar is redrawn in place (at most ~10 times a second); otherwise a plain
    status line is printed every ``status_every`` seconds so that log files stay readable.
    """

    def __init__(self, stream, enabled: bool | None, status_every: float):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if enabled is None else enabled
        self.status_every = status_every
        # Reentrant: the Ctrl-C handler logs from the main thread, which may hold the lock.
        self._lock = threading.RLock()
        self._line = ""
        self._last_draw = 0.0
        self._last_status = time.monotonic()

    def log(self, message: str) -> None:
        with self._lock:
            if self.tty and self._line:
                self.stream.write("\r" + " " * min(len(self._line), 120) + "\r")
            self.stream.write(message.rstrip("\n") + "\n")
            if self.tty and self._line:
                self.stream.write(self._line)
            self.stream.flush()

    def progress(self, line: str, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if self.tty:
                if force or now - self._last_draw >= 0.1:
                    self._last_draw = now
                    padded = line.ljust(len(self._line))
                    self._line = line
                    self.stream.write("\r" + padded)
                    self.stream.flush()
            elif self.status_every and now - self._last_status >= self.status_every:
                self._last_status = now
                self.stream.write(line + "\n")
                self.stream.flush()

    def finish(self) -> None:
        with self._lock:
            if self.tty and self._line:
                self.stream.write("\n")
                self.stream.flush()
            self._line = ""


@dataclasses.dataclass
class QueueSummary:
    """What a queue run did; :meth:`to_text` is what the command prints."""

    requested: int
    skipped: int
    done: int
    rejected: int
    failed: int
    unfinished: int
    retries: int
    wall_s: float
    interrupted: bool
    stop_reason: str
    dataset_root: str | None
    servers: list[dict]
    failures: list[tuple[str, str]]     # (sample id, reason)
    unfinished_items: list[tuple[str, str]]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed or self.unfinished else EXIT_OK

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["failures"] = [{"id": i, "reason": r} for i, r in self.failures]
        data["unfinished_items"] = [{"id": i, "reason": r} for i, r in self.unfinished_items]
        data["exit_code"] = self.exit_code
        return data

    @staticmethod
    def _grouped(items: list[tuple[str, str]], max_groups: int, ids_shown: int = 8) -> list[str]:
        groups: dict[str, list[str]] = {}
        for sample_id, reason in items:
            groups.setdefault(reason, []).append(sample_id)
        lines = []
        for reason, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))[
                :max_groups]:
            shown = ", ".join(ids[:ids_shown]) + (f" (+{len(ids) - ids_shown} more)"
                                                   if len(ids) > ids_shown else "")
            lines.append(f"    {len(ids)} x {reason}\n        ids: {shown}")
        if len(groups) > max_groups:
            lines.append(f"    ... and {len(groups) - max_groups} other reason(s)")
        return lines

    def to_text(self, max_groups: int = 12) -> str:
        lines = [f"ld-portrait queue: {self.requested} sample(s) requested, wall time "
                 f"{_format_seconds(self.wall_s)}"
                 + (" (interrupted)" if self.interrupted else "")]
        where = f" in {self.dataset_root}" if self.dataset_root else ""
        rows = [("done", self.done, ""),
                ("rejected", self.rejected, "the quality gate said no; recorded under rejected/"),
                ("skipped", self.skipped, f"already complete{where}"),
                ("failed", self.failed, ""),
                ("unfinished", self.unfinished, "run the same command again to continue"),
                ("retries", self.retries, "attempts repeated after a failure")]
        for name, count, note in rows:
            if count or name in ("done", "failed"):
                lines.append(f"  {name:<11}{count:>7}" + (f"   ({note})" if note else ""))
        if self.stop_reason:
            lines.append(f"  stopped: {self.stop_reason}")
        if self.servers:
            lines.append("  servers:")
            for server in self.servers:
                extra = [f"{server[key]} {label}" for key, label in (
                    ("failed_attempts", "failed attempt(s)"),
                    ("validation_errors", "validation error(s)"),
                    ("timeouts", "timeout(s)"),
                    ("connection_errors", "connection error(s)")) if server[key]]
                state = "" if server["enabled"] else f"  [not used: {server['disabled_reason']}]"
                lines.append(f"    {server['url']}: {server['submitted']} submitted, "
                             f"{server['done']} done, {server['rejected']} rejected"
                             + (", " + ", ".join(extra) if extra else "") + state)
        if self.failures:
            lines.append(f"  failures ({len(self.failures)}):")
            lines.extend(self._grouped(self.failures, max_groups))
        if self.unfinished_items:
            lines.append(f"  unfinished ({len(self.unfinished_items)}):")
            lines.extend(self._grouped(self.unfinished_items, max_groups))
        return "\n".join(lines)


class QueueRunner:
    """Run the jobs for ``indices`` on ``servers``; see the module docstring for the rules.

    Parameters
    ----------
    graph : mapping
        API-format graph (see :func:`check_api_graph`); copied per job, never modified.
    indices : iterable of int
        Sample indices, each >= 0 (duplicates are dropped, order kept).
    servers : list of str
        ComfyUI base URLs (normalised with :func:`normalize_server_url`).
    dataset_root : path, optional
        Local path of the dataset the servers write, for resume and verification.
    options : QueueOptions, optional
    stream : text stream, optional
        Progress and log messages (default ``sys.stderr``).
    progress : bool, optional
        Force the in-place progress bar on or off (default: on when ``stream`` is a terminal).

    Raises
    ------
    WorkflowError
        The graph cannot be queued (no template node, ...).
    ValueError
        Bad indices, servers or options.
    """

    def __init__(self, graph: Mapping, indices: Iterable[int], servers: list[str], *,
                 dataset_root=None, options: QueueOptions | None = None, stream=None,
                 progress: bool | None = None):
        self.options = options or QueueOptions()
        self.options.check()
        self.graph = check_api_graph(dict(graph))
        self.info = inspect_graph(self.graph)
        self.base_seed = int(self.options.seed if self.options.seed is not None
                             else self.info.template_seed if self.info.template_seed is not None
                             else 0)
        # Validates the graph (template present) once, up front.
        self.first_rewrites: list[Rewrite] = []
        self.indices: list[int] = []
        seen = set()
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ValueError(f"sample indices must be integers >= 0, got {index!r}.")
            if index not in seen:
                seen.add(index)
                self.indices.append(index)
        probe_index = self.indices[0] if self.indices else 0
        _, self.first_rewrites = self._rewrite(probe_index)
        urls = []
        for url in servers:
            url = normalize_server_url(url)
            if url not in urls:
                urls.append(url)
        if not urls:
            raise ValueError("no server given; use --server http://HOST:PORT.")
        self.servers = [_Server(url, self.options.http_timeout) for url in urls]
        self.disabled_reasons: dict[str, str] = {}
        self.dataset_root = Path(dataset_root).expanduser() if dataset_root is not None else None
        if self.dataset_root is not None and self.dataset_root.exists() and \
                not self.dataset_root.is_dir():
            raise ValueError(f"--dataset {self.dataset_root} exists but is not a folder.")
        self.probe = _DatasetProbe(self.dataset_root) if self.dataset_root is not None else None
        self.client_id = self.options.client_id or uuid.uuid4().hex
        self.console = _Console(stream if stream is not None else sys.stderr, progress,
                                self.options.status_every)
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._pending: list[_Job] = []
        self._verifying: list[_Job] = []
        self._jobs: list[_Job] = []
        self._stop_requested = False
        self._hard_stop = False
        self._interrupted = False
        self._closing = False
        self._stop_reason = ""
        self._stop_time: float | None = None
        self._retries = 0
        self._failed = 0
        self._warned: set[str] = set()
        self._open = 0          # jobs without an outcome yet
        self._give_up = False
        self._give_up_reason = ""  # set with _give_up unless no server was reachable
        self._total = 0
        self._threads: list[threading.Thread] = []
        self._verify = bool(self.options.verify and self.probe is not None)

    # ---- public ---------------------------------------------------------------------------

    def stop(self, now: bool = False) -> None:
        """Stop submitting; in-flight jobs get ``options.grace`` seconds (``now``: none)."""
        with self._cond:
            if not self._stop_requested:
                self._stop_time = time.monotonic()
            self._stop_requested = True
            self._interrupted = True
            self._stop_reason = self._stop_reason or "stopped on request (Ctrl-C)"
            if now:
                self._hard_stop = True
            self._cond.notify_all()
        if now:
            self._wake.set()

    def in_flight_count(self) -> int:
        with self._cond:
            return sum(len(server.inflight) for server in self.servers)

    def plan_text(self) -> str:
        """What a run would do, without contacting any server (``--dry-run``)."""
        complete = self.probe.complete_ids() if self.probe is not None else set()
        todo = [i for i in self.indices if index_id(i) not in complete]
        lines = [f"{len(todo)} job(s) to queue, {len(self.indices) - len(todo)} already complete"
                 f"; servers: {', '.join(s.url for s in self.servers)}; base seed "
                 f"{self.base_seed}; client id {self.client_id}"]
        if todo:
            lines.append(f"inputs set for the first job (index {todo[0]}, id {index_id(todo[0])}):")
            _, changes = self._rewrite(todo[0])
            lines.extend(f"  {change}" for change in changes)
            if not changes:
                lines.append("  (none)")
        return "\n".join(lines)

    def run(self) -> QueueSummary:
        """Run until every job is settled, the run is stopped, or no server answers."""
        started = time.monotonic()
        self._warn_about_setup()
        complete = self.probe.complete_ids() if self.probe is not None else set()
        skipped = 0
        for index in self.indices:
            job = _Job(index, index_id(index))
            self._jobs.append(job)
            if job.sample_id in complete:
                job.outcome, job.reason = "skipped", "already complete"
                skipped += 1
            else:
                self._pending.append(job)
        self._total = self._open = len(self._pending)
        if self._pending and self.options.preflight:
            self._preflight()
        for server in self.servers:
            server.last_ok = time.monotonic()
        if self._pending:
            for server in self.servers:
                if server.enabled:
                    thread = threading.Thread(target=self._serve, args=(server,), daemon=True,
                                              name=f"ldp-queue {server.url}")
                    thread.start()
                    self._threads.append(thread)
            self._supervise()
        self._close()
        summary = self._summary(time.monotonic() - started)
        self.console.finish()
        return summary

    # ---- setup ----------------------------------------------------------------------------

    def _rewrite(self, index: int):
        return rewrite_graph(self.graph, index, base_seed=self.base_seed,
                             keep_sampler_seed=self.options.keep_sampler_seed,
                             dataset_name=self.options.dataset_name,
                             allow_no_template=self.options.allow_no_template)

    def _warn_about_setup(self) -> None:
        if self.dataset_root is None:
            self.console.log("note: no --dataset given: completed samples are not skipped and "
                             "results are not checked on disk.")
            return
        if not self.dataset_root.is_dir():
            self.console.log(f"note: dataset folder {self.dataset_root} does not exist yet: "
                             "nothing to skip.")
        if not self.info.save_nodes:
            if self._verify:
                self.console.log(f"warning: the graph has no {SAVE_CLASS} node, so results are "
                                 f"not checked in {self.dataset_root}.")
            self._verify = False
        names = {self.options.dataset_name} if self.options.dataset_name else set(
            self.info.dataset_names)
        if names and self.dataset_root.name not in names:
            self.console.log(
                f"warning: the {SAVE_CLASS} node writes dataset {sorted(names)[0]!r} but --dataset "
                f"is {self.dataset_root}: make sure it is that folder (ComfyUI's output/"
                f"{sorted(names)[0]}), or completed samples will not be found.")

    def _preflight(self) -> None:
        """Disable servers that lack node types the graph uses (checked once via /object_info)."""
        needed = set(self.info.class_types)
        results: dict[str, str | None] = {}

        def check(server: _Server) -> None:
            http_ = _Http(server.url, min(self.options.http_timeout, 10.0))
            try:
                info = http_.get_json("/object_info")
            except _Unreachable as error:
                self.console.log(f"warning: {server.url}: not reachable now ({error}); will keep "
                                 "trying.")
                return
            if not isinstance(info, dict):
                return
            missing = sorted(needed - set(info))
            if missing:
                results[server.url] = ("missing node type(s) " + ", ".join(missing))

        threads = [threading.Thread(target=check, args=(s,), daemon=True) for s in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.options.http_timeout + 1)
        for server in self.servers:
            reason = results.get(server.url)
            if reason:
                server.enabled = False
                self.disabled_reasons[server.url] = reason
                self.console.log(f"warning: {server.url}: {reason}; not using this server "
                                 "(install the node pack there and restart ComfyUI).")
        if not any(server.enabled for server in self.servers):
            details = "; ".join(f"{url}: {why}" for url, why in self.disabled_reasons.items())
            raise QueueSetupError(f"no server can run this graph: {details}. Install "
                                  "ComfyUI-LD-Portrait (and the graph's other node packs) on the "
                                  "servers and restart ComfyUI.")

    # ---- bookkeeping (call with self._cond held) -------------------------------------------

    def _finalize(self, job: _Job, outcome: str, reason: str = "") -> None:
        if job.outcome is not None:  # settled already (a late thread after the run closed)
            return
        job.outcome, job.reason = outcome, reason
        job.server = None
        self._open -= 1
        if outcome == "failed":
            self._failed += 1
            self.console.log(f"failed {job.sample_id}: {reason}")
            limit = self.options.max_failures
            if limit and self._failed >= limit and not self._stop_requested:
                self._stop_requested = True
                self._stop_time = time.monotonic()
                self._stop_reason = f"{self._failed} job(s) failed (--max-failures {limit})"
                self.console.log(f"stopping: {self._stop_reason}; waiting for jobs in flight.")
        self._cond.notify_all()

    def _server_ok(self, server: _Server) -> None:
        server.consecutive_errors = 0
        server.unhealthy_until = 0.0
        server.last_ok = time.monotonic()

    def _server_error(self, server: _Server, message: str, *, transport: bool = True) -> None:
        with self._cond:
            if transport:
                server.counts["connection_errors"] += 1
            server.consecutive_errors += 1
            pause = min(self.options.backoff * 2 ** (server.consecutive_errors - 1),
                        self.options.backoff_max)
            server.unhealthy_until = time.monotonic() + pause
            server.last_error = message
            key = f"{server.url}:{message}"
            if server.consecutive_errors == 1 or key not in self._warned:
                self._warned.add(key)  # under the lock: check-and-add is atomic
                self.console.log(f"warning: {server.url}: {message}; pausing it for {pause:g} s.")
            self._cond.notify_all()

    def _warn_once(self, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was warned about already (any thread); True if logged."""
        with self._cond:
            if key in self._warned:
                return False
            self._warned.add(key)
            self.console.log(message)
            return True

    def _retry_delay(self, job: _Job) -> float:
        """Back-off before the next attempt: ``backoff * 2**(failures - 1)``, <= ``backoff_max``."""
        failures = max(len(job.failures), 1)
        return min(self.options.backoff * 2 ** min(failures - 1, 60), self.options.backoff_max)

    def _requeue_unattempted(self, job: _Job, server: _Server) -> None:
        with self._cond:
            job.server = None
            job.avoid = server.url
            job.prompt_id = None
            job.running_since = None
            if self._closing:
                return
            if self._stop_requested:
                self._finalize(job, "unfinished", "not started (stopped)")
            else:
                self._pending.insert(0, job)
            self._cond.notify_all()

    def _attempt_failed(self, job: _Job, server: _Server, reason: str) -> None:
        with self._cond:
            server.counts["failed_attempts"] += 1
            job.failures.append(f"{server.url}: {reason}")
            job.server = None
            job.prompt_id = None
            job.running_since = None
            job.missing_polls = 0
            if self._closing or job.outcome is not None:
                return
            if self._stop_requested:
                self._finalize(job, "unfinished", f"{reason} (not retried: stopped)")
            elif job.attempts <= self.options.retries:
                self._retries += 1
                job.avoid = server.url
                delay = self._retry_delay(job)
                job.ready_at = time.monotonic() + delay
                self._pending.insert(0, job)
                self.console.log(f"retrying {job.sample_id} in {delay:g} s (attempt "
                                 f"{job.attempts} failed on {server.url}: {reason})")
            else:
                suffix = f" (after {job.attempts} attempts)" if job.attempts > 1 else ""
                self._finalize(job, "failed", reason + suffix)
            self._cond.notify_all()

    def _take_job(self, server: _Server) -> _Job | None:
        with self._cond:
            if self._stop_requested or self._closing or not server.enabled:
                return None
            now = time.monotonic()
            # A stuck server takes no work, so it does not count as another place to run a job.
            others = any(other is not server and other.healthy(now) and not other.stuck
                         for other in self.servers)
            for position, job in enumerate(self._pending):
                if job.ready_at > now or (job.avoid == server.url and others):
                    continue
                del self._pending[position]
                job.server = server.url
                return job
            return None

    # ---- server threads -------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(seconds, 0.0))

    def _serve(self, server: _Server) -> None:
        """Worker thread of one server: submit, poll, repeat until closing or disabled."""
        while not self._closing and server.enabled:
            try:
                self._serve_step(server)
            except Exception as error:  # a bug must not kill the worker and lose its job
                self._worker_error(server, error)
                self._sleep(self.options.poll_interval)

    def _serve_step(self, server: _Server) -> None:
        options = self.options
        now = time.monotonic()
        if now < server.unhealthy_until:
            self._sleep(min(server.unhealthy_until - now, options.poll_interval))
            return
        if server.inflight and server.consecutive_errors and \
                now - server.last_ok > options.server_down_after:
            self._redistribute(server)
        while not self._closing and server.enabled and not server.stuck and \
                len(server.inflight) < options.in_flight:
            job = self._take_job(server)
            if job is None or not self._submit(server, job):
                break
        if (server.inflight or server.stuck) and not self._closing and server.enabled and \
                time.monotonic() >= server.unhealthy_until:
            self._poll(server)
        self._sleep(options.poll_interval)

    def _worker_error(self, server: _Server, error: Exception) -> None:
        """An unexpected exception in ``server``'s worker: log it, pause the server, and put
        back the jobs it had taken that are neither in flight nor settled."""
        where = "".join(traceback.format_exception_only(type(error), error)).strip()
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            where += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
        self.console.log(f"error: {server.url}: unexpected error in the queue worker: "
                         f"{_short(where, 300)}; treating it as a server error.")
        self._server_error(server, f"internal error: {_short(where, 160)}", transport=False)
        with self._cond:
            # Only this worker moves jobs marked with its url, so none is half-way elsewhere.
            orphans = [job for job in self._jobs
                       if job.outcome is None and job.server == server.url
                       and all(job is not other for other in server.inflight.values())]
            for job in orphans:
                job.internal_errors += 1
        for job in orphans:
            if job.internal_errors > self.options.retries:
                with self._cond:
                    job.failures.append(f"{server.url}: internal error: {where}")
                    self._finalize(job, "failed", f"internal error in the queue worker "
                                                  f"({_short(where, 160)}), "
                                                  f"{job.internal_errors} time(s)")
            else:
                self._requeue_unattempted(job, server)

    def _redistribute(self, server: _Server) -> None:
        for prompt_id, job in list(server.inflight.items()):
            with self._cond:
                server.inflight.pop(prompt_id, None)
            self._attempt_failed(job, server, f"server unreachable for more than "
                                              f"{self.options.server_down_after:g} s while the "
                                              f"job was in flight ({server.last_error})")

    def _submit(self, server: _Server, job: _Job) -> bool:
        """Submit ``job``; False when ``server`` should not get more work right now."""
        if self.probe is not None:
            status = self.probe.status(job.sample_id)
            if status is not None:
                with self._cond:
                    if job.attempts:  # an earlier attempt finished after all (e.g. a lost job)
                        self._finalize(job, "done" if status == "accepted" else "rejected",
                                       "" if status == "accepted" else "rejected by the quality "
                                       "gate")
                    else:  # another run or writer completed it meanwhile
                        self._finalize(job, "skipped", "completed elsewhere during the run")
                return True
        graph, _ = self._rewrite(job.index)
        prompt_id = str(uuid.uuid4())
        payload = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        try:
            status, body = server.http.request("POST", "/prompt", payload)
        except _Unreachable as error:
            self._server_error(server, f"POST /prompt failed: {error}")
            self._requeue_unattempted(job, server)
            return False
        if status == 200:
            try:
                answer = json.loads(body.decode("utf-8"))
                prompt_id = str(answer.get("prompt_id") or prompt_id)
            except (ValueError, AttributeError):
                answer = {}
            with self._cond:
                self._server_ok(server)
                job.attempts += 1
                job.prompt_id = prompt_id
                job.missing_polls = 0
                job.running_since = None
                server.counts["submitted"] += 1
                server.inflight[prompt_id] = job
                closing = self._closing
            if answer.get("node_errors"):
                text = format_validation_error({"node_errors": answer["node_errors"]})
                self._warn_once(text, f"warning: {server.url} accepted the graph but dropped "
                                      f"outputs that failed validation: {text}")
            return not closing
        if status == 400:
            reason = "validation failed: " + format_validation_error(body)
            with self._cond:
                self._server_ok(server)
                server.counts["validation_errors"] += 1
                job.failures.append(f"{server.url}: {reason}")
                self._finalize(job, "failed", f"{reason} [{server.url}]")
            return True
        # 5xx, 404 (not ComfyUI?), ...: the server answered but could not take the job.
        text = _short(body.decode("utf-8", "replace"), 200)
        reason = f"POST /prompt answered HTTP {status}" + (f": {text}" if text else "")
        with self._cond:
            job.attempts += 1
        self._server_error(server, reason, transport=False)
        self._attempt_failed(job, server, reason)
        return False

    def _poll(self, server: _Server) -> None:
        options = self.options
        try:
            queue = server.http.get_json("/queue")
            if not isinstance(queue, dict):
                raise _Unreachable("GET /queue answered something that is not a JSON object")
        except _Unreachable as error:
            self._server_error(server, str(error))
            return

        def ids(key: str) -> set[str]:
            items = queue.get(key) or []
            return {str(item[1]) for item in items
                    if isinstance(item, (list, tuple)) and len(item) > 1}

        running, waiting = ids("queue_running"), ids("queue_pending")
        now = time.monotonic()
        with self._cond:
            self._server_ok(server)
            server.stuck = {pid: value for pid, value in server.stuck.items()
                            if pid in running or pid in waiting}
            hung = [(pid, value) for pid, value in server.stuck.items()
                    if now - value[0] > options.give_up_after]
        if hung:
            self._disable_stuck(server, *hung[0])
            return
        for prompt_id, job in list(server.inflight.items()):
            if self._closing:
                return
            if prompt_id in running or prompt_id in waiting:
                job.missing_polls = 0
                if prompt_id in running and job.running_since is None:
                    job.running_since = now
                if prompt_id in running and options.timeout is not None and \
                        now - job.running_since > options.timeout:
                    self._timed_out(server, job, prompt_id, waiting)
                    return
                continue
            try:
                history = server.http.get_json(f"/history/{quote(prompt_id, safe='')}")
            except _Unreachable as error:
                self._server_error(server, str(error))
                return
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry is None:
                # Not queued, not in history: lost (server restarted). Seen twice to be sure.
                job.missing_polls += 1
                if job.missing_polls >= 2:
                    with self._cond:
                        server.inflight.pop(prompt_id, None)
                    self._attempt_failed(job, server, "the job vanished from the server without "
                                                      "a result (ComfyUI restarted?)")
                continue
            with self._cond:
                server.inflight.pop(prompt_id, None)
            succeeded, reason = parse_history_entry(entry)
            if succeeded:
                self._succeeded(job, server)
            else:
                self._attempt_failed(job, server, reason)

    def _timed_out(self, server: _Server, job: _Job, prompt_id: str, waiting: set[str]) -> None:
        """A job ran too long: count the attempt, and take our waiting jobs off that server.

        The running job is not cancelled (``/interrupt`` could hit another client's job on
        older hosts); the server gets no new work until it has finished.
        """
        with self._cond:
            server.counts["timeouts"] += 1
            server.inflight.pop(prompt_id, None)
            server.stuck[prompt_id] = (time.monotonic(), job.sample_id)
            queued_behind = [(pid, j) for pid, j in server.inflight.items() if pid in waiting]
            for pid, _ in queued_behind:
                server.inflight.pop(pid, None)
        if queued_behind:
            try:
                server.http.request("POST", "/queue", {"delete": [pid for pid, _ in queued_behind]})
            except _Unreachable:
                pass  # if they still run, the dataset keeps the first copy
        self._attempt_failed(job, server, f"timed out: still running after "
                                          f"{self.options.timeout:g} s")
        for _, other in queued_behind:
            with self._cond:
                other.attempts -= 1  # taken back before it ran: that try does not count
                server.counts["submitted"] -= 1
            self._requeue_unattempted(other, server)
        self._server_error(server, f"job {job.sample_id} timed out; no new work until it ends",
                           transport=False)

    def _disable_stuck(self, server: _Server, prompt_id: str, stuck: tuple[float, str]) -> None:
        """A timed-out prompt is still on ``server`` ``give_up_after`` s later: stop using it."""
        bound = (self.options.timeout or 0.0) + self.options.give_up_after
        reason = (f"server stuck: job {stuck[1]} (prompt id {prompt_id}) still queued or running "
                  f"{bound:g} s after it started (--timeout {self.options.timeout or 0:g} + "
                  f"--give-up-after {self.options.give_up_after:g})")
        with self._cond:
            server.enabled = False
            self.disabled_reasons[server.url] = reason
            left = list(server.inflight.items())
            server.inflight.clear()
            self._cond.notify_all()
        self.console.log(f"warning: {server.url}: {reason}; not using this server any more "
                         "(restart ComfyUI there).")
        for _, job in left:
            self._attempt_failed(job, server, reason)

    def _succeeded(self, job: _Job, server: _Server) -> None:
        with self._cond:
            job.server = None
            job.finished_on = server
            if self._verify:
                job.verify_deadline = time.monotonic() + self.options.verify_wait
                self._verifying.append(job)
            elif job.outcome is None:
                server.counts["done"] += 1
                self._finalize(job, "done")
            self._cond.notify_all()

    # ---- supervision (main thread) ----------------------------------------------------------

    def _check_verifying(self, final: bool = False) -> None:
        with self._cond:
            waiting = list(self._verifying)
        for job in waiting:
            status = self.probe.status(job.sample_id)
            with self._cond:
                server = job.finished_on
                if job.outcome is not None:
                    self._verifying.remove(job)
                    continue
                if status is None and not final and time.monotonic() < job.verify_deadline:
                    continue
                self._verifying.remove(job)
                if status == "accepted":
                    self._finalize(job, "done")
                    if server:
                        server.counts["done"] += 1
                elif status == "rejected":
                    self._finalize(job, "rejected", "rejected by the quality gate")
                    if server:
                        server.counts["rejected"] += 1
                else:
                    self._finalize(
                        job, "failed",
                        f"ComfyUI reported success but sample {job.sample_id} is not in "
                        f"{self.dataset_root} (neither accepted nor under rejected/); check that "
                        f"--dataset is the folder the {SAVE_CLASS} node writes (ComfyUI's "
                        "output/<dataset_name>)")

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self._jobs:
            if job.outcome:
                counts[job.outcome] = counts.get(job.outcome, 0) + 1
        return counts

    def _progress_line(self, started: float) -> str:
        counts = self._counts()
        finished = sum(counts.get(k, 0) for k in ("done", "rejected", "failed"))
        settled = finished + counts.get("skipped", 0) - (len(self._jobs) - self._total)
        total = self._total
        fraction = settled / total if total else 1.0
        width = 20
        bar = "#" * int(round(fraction * width))
        elapsed = time.monotonic() - started
        rate = finished / elapsed if elapsed > 0 else 0.0
        remaining = total - settled
        eta = _format_seconds(remaining / rate) if rate > 0 and remaining else (
            "0:00" if not remaining else "--:--")
        inflight = sum(len(s.inflight) for s in self.servers)
        extra = "".join(f", {counts[k]} {k}" for k in ("rejected", "failed") if counts.get(k))
        return (f"queue [{bar:<{width}}] {settled}/{total}{extra} | {inflight} in flight | "
                f"{rate * 60:.1f}/min ETA {eta}")

    def _supervise(self) -> None:
        started = time.monotonic()
        tick = min(0.1, self.options.poll_interval)
        while True:
            with self._cond:
                self._cond.wait(tick)
            if self._verify:
                self._check_verifying()
            self.console.progress(self._progress_line(started))
            now = time.monotonic()
            with self._cond:
                if self._hard_stop or self._open == 0:
                    break
                if self._stop_requested:
                    # Open jobs that are not waiting in _pending are running somewhere (in
                    # flight, being submitted, or being verified).
                    running = self._open - len(self._pending)
                    if running == 0:
                        break
                    if now - (self._stop_time or now) > self.options.grace:
                        self._stop_reason += (f"; {running} job(s) still in flight after "
                                              f"{self.options.grace:g} s grace")
                        break
                enabled = [s for s in self.servers if s.enabled]
                if not enabled:
                    reasons = "; ".join(f"{url}: {why}" for url, why in
                                        self.disabled_reasons.items())
                    self._give_up_now(f"no usable server left ({reasons})")
                    break
                if self._threads and not any(t.is_alive() for t in self._threads):
                    self._give_up_now("gave up: every server worker thread has stopped")
                    break
                latest_ok = max(s.last_ok for s in enabled)
                if all(s.consecutive_errors for s in enabled) and \
                        now - latest_ok > self.options.give_up_after:
                    errors = "; ".join(f"{s.url}: {s.last_error}" for s in enabled)
                    self._stop_reason = (f"no server answered for "
                                         f"{self.options.give_up_after:g} s ({errors})")
                    self.console.log(f"giving up: {self._stop_reason}")
                    self._give_up = True
                    break
        self.console.progress(self._progress_line(started), force=True)

    def _give_up_now(self, reason: str) -> None:
        """End the run (call with ``self._cond`` held): open jobs fail with ``reason``."""
        self._stop_reason = reason
        self._give_up_reason = reason
        self._give_up = True
        self.console.log(f"giving up: {reason}")

    def _close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._wake.set()
        deadline = time.monotonic() + 2.0
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.05))
        if self._verify and self._verifying:
            self._check_verifying(final=True)
        gave_up = self._give_up
        with self._cond:
            for server in self.servers:
                for prompt_id, job in list(server.inflight.items()):
                    if gave_up and self._give_up_reason:
                        self._finalize(job, "failed", f"{self._give_up_reason} (was in flight "
                                                      f"on {server.url}, prompt id {prompt_id})")
                    elif gave_up:
                        self._finalize(job, "failed", f"server unreachable ({server.last_error})")
                    else:
                        self._finalize(job, "unfinished", f"left in flight on {server.url} "
                                                          f"(prompt id {prompt_id}); it may still "
                                                          "complete there")
                server.inflight.clear()
            for job in self._pending:
                if job.outcome is None:
                    if gave_up:
                        self._finalize(job, "failed", f"not run: {self._give_up_reason}"
                                       if self._give_up_reason else "no server reachable")
                    else:
                        self._finalize(job, "unfinished", "not started (stopped)")
            self._pending.clear()
            for job in self._jobs:  # reserved by a thread that did not finish in time
                if job.outcome is None:
                    if gave_up and self._give_up_reason:
                        self._finalize(job, "failed", f"not finished: {self._give_up_reason}")
                    else:
                        self._finalize(job, "unfinished", "stopped while being submitted")

    def _summary(self, wall_s: float) -> QueueSummary:
        counts = self._counts()
        servers = []
        for server in self.servers:
            servers.append(dict(url=server.url, enabled=server.enabled,
                                disabled_reason=self.disabled_reasons.get(server.url, ""),
                                **server.counts))
        failures = [(j.sample_id, j.reason) for j in self._jobs if j.outcome == "failed"]
        unfinished = [(j.sample_id, j.reason) for j in self._jobs if j.outcome == "unfinished"]
        return QueueSummary(
            requested=len(self._jobs), skipped=counts.get("skipped", 0),
            done=counts.get("done", 0), rejected=counts.get("rejected", 0),
            failed=counts.get("failed", 0), unfinished=counts.get("unfinished", 0),
            retries=self._retries, wall_s=wall_s, interrupted=self._interrupted,
            stop_reason=self._stop_reason,
            dataset_root=str(self.dataset_root) if self.dataset_root is not None else None,
            servers=servers, failures=failures, unfinished_items=unfinished)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

_DESCRIPTION = """\
Submit an API-format ComfyUI workflow once per sample index to one or more ComfyUI servers,
keep at most --in-flight jobs queued per server, follow them to completion, retry failures,
skip samples already complete in --dataset ROOT, and print a summary.

Per job (sample index i, base seed S = --seed, else the template node's seed, else 0) the
queue sets, in a copy of the graph:
  LDPPromptTemplate nodes:  index = i, seed = S
  LDPSaveDataset nodes:     sample_index = i (dataset_name = NAME with --dataset-name);
                            a PrimitiveInt counter feeding sample_index gets value = i instead
  other nodes:              literal integer `seed` / `noise_seed` inputs -> the per-sample
                            seed the template outputs for (S, i) (not with --keep-sampler-seed;
                            linked inputs untouched)
Nothing else in the graph changes."""

_EPILOG = """\
examples:
  ld-portrait queue my_workflow_api.json --range 0:20000 \\
      --dataset ~/ComfyUI/output/ld_portrait_20k --server http://127.0.0.1:8188
  ld-portrait queue graph.json --start 500 --count 100 --server gpu1:8188 --server gpu2:8188

Validation errors are reported and not retried; execution errors, lost jobs and timeouts are
retried (on another server when possible) up to --retries times. Ctrl-C stops submitting and
waits up to --grace seconds for jobs in flight (Ctrl-C again: stop now).
Exit codes: 0 all done, 1 some failed, 2 bad arguments or workflow, 130 interrupted (run the
same command again to continue)."""


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def add_queue_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``queue`` arguments (and description/epilog) to ``parser``; returns it."""
    parser.description = parser.description or _DESCRIPTION
    parser.epilog = parser.epilog or _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("workflow", metavar="WORKFLOW_API_JSON",
                        help="API-format workflow (ComfyUI: Workflow > Export (API))")
    parser.add_argument("--dataset", metavar="ROOT",
                        help="local path of the dataset the servers write (ComfyUI's "
                             "output/<dataset_name>): complete ids are skipped and results are "
                             "checked there; leave out for remote servers")
    parser.add_argument("--dataset-name", metavar="NAME",
                        help="also set dataset_name on every LDPSaveDataset node")
    which = parser.add_argument_group("which samples (--count, or --range)")
    which.add_argument("--start", type=_non_negative_int, metavar="N",
                       help="first sample index (default 0)")
    which.add_argument("--count", type=_non_negative_int, metavar="K",
                       help="number of sample indices from --start")
    which.add_argument("--range", dest="index_range", metavar="A:B",
                       help="sample indices A to B-1 (instead of --start/--count)")
    servers = parser.add_argument_group("servers and jobs")
    servers.add_argument("--server", action="append", metavar="URL",
                         help="ComfyUI base URL, repeatable (default http://127.0.0.1:8188)")
    servers.add_argument("--in-flight", type=_positive_int, default=2, metavar="N",
                         help="jobs queued per server at once (default 2)")
    servers.add_argument("--retries", type=_non_negative_int, default=2, metavar="N",
                         help="extra attempts for a job that failed to execute (default 2)")
    servers.add_argument("--timeout", type=_seconds, metavar="S",
                         help="a job still running after S seconds counts as failed and is "
                              "retried elsewhere; if it is still on its server --give-up-after "
                              "seconds later, that server is not used any more (default: no "
                              "limit)")
    servers.add_argument("--seed", type=_non_negative_int, metavar="S",
                         help="base seed (default: the LDPPromptTemplate node's seed)")
    servers.add_argument("--client-id", metavar="ID",
                         help="client id sent with every prompt (default: random per run)")
    servers.add_argument("--keep-sampler-seed", action="store_true",
                         help="do not rewrite literal seed/noise_seed inputs of sampler nodes")
    servers.add_argument("--allow-no-template", action="store_true",
                         help=f"queue a graph without an {TEMPLATE_CLASS} node")
    servers.add_argument("--no-verify", action="store_true",
                         help="do not check that finished samples appear in ROOT")
    servers.add_argument("--poll", type=_seconds, default=1.0, metavar="S",
                         help="seconds between status checks (default 1)")
    servers.add_argument("--grace", type=_seconds, default=60.0, metavar="S",
                         help="after Ctrl-C, wait up to S seconds for jobs in flight (default 60)")
    servers.add_argument("--give-up-after", type=_seconds, default=600.0, metavar="S",
                         help="end the run when no server answered for S seconds; also how "
                              "long a timed-out job may stay on its server before the server "
                              "counts as stuck (default 600)")
    servers.add_argument("--max-failures", type=_non_negative_int, default=0, metavar="N",
                         help="stop submitting after N failed jobs (default 0: no limit)")
    servers.add_argument("--dry-run", action="store_true",
                         help="print what would be queued and the inputs set; contact no server")
    servers.add_argument("--summary-json", metavar="PATH",
                         help="also write the summary as JSON to PATH")
    return parser


def _indices_from_args(args) -> range:
    if getattr(args, "index_range", None):
        if args.start is not None or args.count is not None:
            raise ValueError("use either --range A:B or --start/--count, not both.")
        return parse_range(args.index_range)
    if args.count is None:
        raise ValueError("say which samples to queue: --count K (with --start N, default 0) or "
                         "--range A:B.")
    start = args.start or 0
    return range(start, start + args.count)


class _SigintHandler:
    """First Ctrl-C: runner.stop(); second: runner.stop(now=True). Main thread only."""

    def __init__(self, runner: QueueRunner, stream):
        self.runner, self.stream = runner, stream
        self.presses = 0
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (embedded use)
            self.previous = None
        return self

    def _handle(self, signum, frame):
        self.presses += 1
        if self.presses == 1:
            self.runner.console.log(
                f"\nstopping: no new jobs; waiting up to {self.runner.options.grace:g} s for "
                f"{self.runner.in_flight_count()} job(s) in flight (Ctrl-C again to stop now)...")
            self.runner.stop()
        else:
            self.runner.stop(now=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def run_queue_command(args, *, stdout=None, stderr=None, options: QueueOptions | None = None
                      ) -> int:
    """Run ``ld-portrait queue`` from parsed ``args`` (see :func:`add_queue_arguments`).

    Prints progress and warnings on ``stderr`` and the summary on ``stdout``; returns the exit
    code. ``options`` (tests) supplies defaults for the settings that have no flag.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr

    def usage(message: str) -> int:
        stderr.write(f"ld-portrait queue: error: {message}\n")
        return EXIT_USAGE

    try:
        indices = _indices_from_args(args)
        graph = load_workflow(args.workflow)
        base = options or QueueOptions()
        opts = dataclasses.replace(
            base, in_flight=args.in_flight, retries=args.retries, timeout=args.timeout or None,
            seed=args.seed, client_id=args.client_id, keep_sampler_seed=args.keep_sampler_seed,
            allow_no_template=args.allow_no_template, dataset_name=args.dataset_name,
            verify=not args.no_verify, poll_interval=args.poll or base.poll_interval,
            grace=args.grace, give_up_after=args.give_up_after, max_failures=args.max_failures)
        runner = QueueRunner(graph, indices, args.server or ["http://127.0.0.1:8188"],
                             dataset_root=args.dataset, options=opts, stream=stderr)
    except ValueError as error:  # WorkflowError included
        return usage(str(error))
    if args.dry_run:
        stdout.write(runner.plan_text() + "\n")
        return EXIT_OK
    try:
        with _SigintHandler(runner, stderr):
            summary = runner.run()
    except (QueueSetupError, DatasetError, OSError) as error:  # e.g. an unreadable --dataset
        stderr.write(f"ld-portrait queue: error: {error}\n")
        return EXIT_FAILED
    stdout.write(summary.to_text() + "\n")
    stdout.flush()
    if args.summary_json:
        try:
            Path(args.summary_json).write_text(json.dumps(summary.to_json(), indent=1) + "\n",
                                               encoding="utf-8")
        except OSError as error:
            stderr.write(f"ld-portrait queue: cannot write {args.summary_json}: {error}\n")
            return max(summary.exit_code, EXIT_FAILED)
    return summary.exit_code


def main(argv=None, *, stdout=None, stderr=None) -> int:
    """Standalone ``ld-portrait queue`` (``python -m comfyui_ld_portrait.serverqueue ...``)."""
    stderr = stderr if stderr is not None else sys.stderr
    parser = add_queue_arguments(argparse.ArgumentParser(prog="ld-portrait queue"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    return run_queue_command(args, stdout=stdout, stderr=stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
