"""Headless queueing: keep one or more ComfyUI servers busy until a dataset is complete.

``ld-portrait queue WORKFLOW_API_JSON --dataset ROOT --range A:B --server URL ...`` takes an
API-format workflow (what ComfyUI's *Export (API)* writes: ``{node id: {"class_type": ...,
"inputs": {...}}}``), makes one job per sample index, submits the jobs to the servers over
their HTTP API (``POST /prompt``), keeps at most ``--in-flight`` of them queued per server,
follows them through each server's websocket events (``/ws?clientId=``: a slot is refilled
the moment a job ends; ``GET /queue`` and ``GET /history/<prompt id>`` polls while a
websocket is down or quiet, see :mod:`.events`), retries failures a bounded number of times,
skips samples already complete in the dataset, shows progress with an ETA, stops cleanly on
Ctrl-C and prints a summary. Standard library only (``http.client``, ``socket``,
``threading``); HTTP proxies from the environment are not used.

Modules: ``graph`` (read, check and rewrite workflow graphs), ``client`` (HTTP with a total
deadline per request, reading ComfyUI's answers), ``jobs`` (options, job and server records,
the lazy index source, the dataset probe), ``runner`` (worker threads, retries, timeouts),
``limits`` (when a job or the run gives up: placement budget, first answer, no answer),
``events`` (one websocket listener per server), ``websocket`` (a minimal RFC 6455 client),
``report`` (progress line and summary), ``command`` (arguments, the command,
``register`` for ``ld-portrait``).

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

A workflow nested deeper than :data:`~.graph.MAX_NESTING` levels is refused with a clear
error. Sample indices lie in ``[0, 2**53)``; a range is walked lazily, never listed.

Job life cycle and failure handling
-----------------------------------
* **Resume**: indices whose id is complete in ``--dataset ROOT`` (accepted or rejected, as
  :class:`~comfyui_ld_portrait.dataset.DatasetWriter` reports) are skipped, at start and again
  just before each submission. Without ``--dataset`` (remote servers) nothing is skipped.
* **Every HTTP request** has a total deadline (``http_timeout``, 30 s: connect, send and the
  whole answer), so a server that answers one byte per second cannot hold a worker.
* **Validation errors** (HTTP 400 with ``error``/``node_errors``) fail the job at once with
  the node's message; they are not retried because the same graph fails the same way.
* **Execution errors** (history ``status.status_str == "error"``, or an ``execution_error`` /
  ``execution_interrupted`` message), a job that **vanishes** from a server (restarted), a job
  running longer than ``--timeout``, and unexpected HTTP answers count as a failed attempt;
  the job is retried, on another server when one is healthy, until it has failed
  ``1 + --retries`` times. A retry waits ``backoff`` seconds after the first failure, doubling
  per further failure up to ``backoff_max`` (2 s .. 15 s by default; a server's pause after
  its errors follows the same schedule). ``POST /prompt`` answering 200 with a body that is
  not JSON (an HTML page: not a ComfyUI server, or a proxy's login page) is such an answer and
  is reported as such; any such answer is named with its status line and the start of its
  body ("HTTP 500 Internal Server Error: <body>").
* **Bounded jobs**: whatever succeeds in between, a job whose result cannot be read for
  ``--give-up-after`` seconds after it left the server's queue (``/history`` keeps failing
  while ``/queue`` answers) fails its attempt. With ``--timeout T``, a job that has not
  started ``T + --give-up-after`` seconds after its submission (something ahead of it hangs)
  fails its attempt, and so does a started one still without a result ``T + --give-up-after``
  seconds after it started: every attempt ends within ``2 (T + --give-up-after)`` seconds.
* **Hung jobs**: a job that timed out is not cancelled (``/interrupt`` could hit another
  client's job), so its server gets no new work while it is still queued or running there.
  If it is still there ``--give-up-after`` seconds after it timed out (``--timeout +
  --give-up-after`` after it started), the server counts as stuck and is not used any more;
  when no usable server is left the run ends and the remaining jobs count as failed
  ("no usable server left ... server stuck").
* **Placement budget** (``--submit-within``, 60 s): a sample that no server has accepted 60 s
  after its first try fails, whatever attempts it has left: always when servers answered but
  refused it (5xx, not JSON), and for transport failures while no server has answered yet
  (then its ``POST /prompt`` deadline is also cut to what is left of the 60 s, so a silent
  server cannot stretch it).
* **Dead servers**: until some server has *answered successfully* (accepted a job, reported
  its queue, or rejected a graph as invalid; the ``/object_info`` preflight does not count)
  nothing shows that the servers will ever work, so the run ends (exit 1, every job not done
  failed, the servers' last answers in the reason) ``--first-answer-within`` (90 s) after the
  servers were first contacted, or once ``--first-answer-failures`` (3) samples have failed,
  whichever comes first. A wrong URL, a refused port, a silent host or a server answering
  HTTP 500 to everything so costs at most about 2 minutes however long the range. 90 s is
  above a typical ComfyUI start-up (a queue started together with its server still runs);
  with the 15 s back-off cap a starting server is tried at 0, 2, 6, 14, 29, 44 and 59 s.
  Once a server has answered, failures count as faults that pass: the rules below apply.
* **Unreachable servers** (refused, reset, no answer): the server is marked unhealthy with an
  exponential back-off and the job goes back to the queue for any server (this does not use
  up a retry: the job never ran). Jobs in flight on a server that stays unreachable longer than
  ``server_down_after`` are redistributed (that uses up a retry). When no server has answered
  for ``--give-up-after`` seconds the run ends and every job not done counts as failed, also
  one a worker was holding at that moment.
* **Internal errors**: an unexpected exception in a server's worker is logged and handled like
  a server error (the server pauses); a job it had taken goes back to the queue (at most
  ``1 + --retries`` times). If every worker has stopped, the run ends ("gave up").
* **Verification**: after ComfyUI reports success the sample must appear in ROOT within a few
  seconds: accepted -> done, under ``rejected/`` -> rejected (the quality gate said no), absent
  -> failed (not retried: ComfyUI would serve the same graph from its cache).
* **Ctrl-C** (or :meth:`QueueRunner.stop`): nothing new is submitted; jobs in flight get
  ``--grace`` seconds to finish; a second Ctrl-C stops waiting. Jobs left on a server may still
  complete there; a re-run skips them.
* **Time** is read through the runner's ``clock`` (default :func:`time.monotonic`), so a run
  can be stepped through simulated time (``tests/cli/queue/test_dead_servers.py``).
* Exit codes: 0 everything done (or rejected, or skipped), 1 some failed, 2 usage errors,
  130 interrupted.

Duplicate execution is harmless: if a connection drops after a server accepted a job, the job
may run twice; the dataset writer keeps the first copy and never duplicates a manifest line.
"""
from __future__ import annotations

from .client import (Answer, HttpClient, ServerUnreachable, format_validation_error,
                     normalize_server_url, parse_history_entry)
from .command import (QUEUE_HELP, add_queue_arguments, indices_from_args, main, parse_range,
                      register, run_queue_command)
from .graph import (MAX_NESTING, MAX_SAMPLE_INDEX, SAVE_CLASS, SEED_INPUTS, TEMPLATE_CLASS,
                    GraphInfo, Rewrite, WorkflowError, check_api_graph, inspect_graph, job_seed,
                    load_workflow, rewrite_graph)
from .jobs import DatasetProbe, IndexSource, Job, QueueOptions, ServerState
from .report import NotStarted, QueueSummary
from .runner import QueueRunner, QueueSetupError

__all__ = [
    "TEMPLATE_CLASS", "SAVE_CLASS", "SEED_INPUTS", "MAX_NESTING", "MAX_SAMPLE_INDEX",
    "WorkflowError", "QueueSetupError", "Rewrite", "GraphInfo", "QueueOptions", "QueueRunner",
    "QueueSummary", "NotStarted", "Job", "ServerState", "IndexSource", "DatasetProbe",
    "Answer", "HttpClient", "ServerUnreachable", "load_workflow", "check_api_graph",
    "inspect_graph", "rewrite_graph", "job_seed", "normalize_server_url", "parse_range",
    "indices_from_args", "format_validation_error", "parse_history_entry",
    "add_queue_arguments", "run_queue_command", "register", "main", "QUEUE_HELP",
]
