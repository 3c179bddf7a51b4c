"""``ld-portrait queue``: arguments, the command, and its registration with ``ld-portrait``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ...dataset import DatasetError
from ..common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, StopFlag, non_negative_int,
                      non_negative_seconds, positive_int)
from .graph import MAX_SAMPLE_INDEX, TEMPLATE_CLASS, load_workflow
from .jobs import QueueOptions
from .runner import QueueRunner, QueueSetupError

__all__ = ["QUEUE_HELP", "add_queue_arguments", "parse_range", "indices_from_args",
           "run_queue_command", "main", "register"]

QUEUE_HELP = "submit an API workflow to ComfyUI servers, one job per sample index"

_DESCRIPTION = """\
Submit an API-format ComfyUI workflow once per sample index to one or more ComfyUI servers,
keep at most --in-flight jobs queued per server, follow them to completion (through each
server's websocket events; polling while a websocket is down), retry failures,
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
retried (on another server when possible) up to --retries times. Every HTTP request must be
answered completely within 30 s. Ctrl-C stops submitting and waits up to --grace seconds for
jobs in flight (Ctrl-C again: stop now).

Dead servers end the run quickly (defaults): a sample no server accepts within 60 s of its
first try fails (--submit-within); until some server has answered successfully (accepted a
job, reported its queue, or rejected a graph as invalid) the run ends after 90 s
(--first-answer-within) or after 3 failed samples (--first-answer-failures), whichever comes
first, so a wrong URL, a refused port, a silent host or a server answering HTTP 500 to
everything costs at most about 2 minutes, not hours. A server that has answered before and
then fails (a restart, a hiccup) is waited for up to --give-up-after seconds.
Exit codes: 0 all done, 1 some failed, 2 bad arguments or workflow, 130 interrupted (run the
same command again to continue)."""


def _add_which_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_argument_group("which samples (--count, or --range)")
    which.add_argument("--start", type=non_negative_int, metavar="N",
                       help="first sample index (default 0)")
    which.add_argument("--count", type=non_negative_int, metavar="K",
                       help="number of sample indices from --start")
    which.add_argument("--range", dest="index_range", metavar="A:B",
                       help="sample indices A to B-1 (instead of --start/--count; B <= 2**53)")


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    servers = parser.add_argument_group("servers and jobs")
    servers.add_argument("--server", action="append", metavar="URL",
                         help="ComfyUI base URL, repeatable (default http://127.0.0.1:8188)")
    servers.add_argument("--in-flight", type=positive_int, default=2, metavar="N",
                         help="jobs queued per server at once (default 2)")
    servers.add_argument("--retries", type=non_negative_int, default=2, metavar="N",
                         help="extra attempts for a job that failed to execute (default 2)")
    servers.add_argument("--timeout", type=non_negative_seconds, metavar="S",
                         help="a job running longer than S seconds counts as failed and is "
                              "retried elsewhere, and so does one not started S + "
                              "--give-up-after seconds after its submission; a server still "
                              "holding a timed-out job --give-up-after seconds later is not "
                              "used any more (default: no limit)")
    servers.add_argument("--seed", type=non_negative_int, metavar="S",
                         help="base seed (default: the LDPPromptTemplate node's seed)")
    servers.add_argument("--client-id", metavar="ID",
                         help="client id sent with every prompt (default: random per run)")
    servers.add_argument("--keep-sampler-seed", action="store_true",
                         help="do not rewrite literal seed/noise_seed inputs of sampler nodes")
    servers.add_argument("--allow-no-template", action="store_true",
                         help=f"queue a graph without an {TEMPLATE_CLASS} node")
    servers.add_argument("--no-verify", action="store_true",
                         help="do not check that finished samples appear in ROOT")
    servers.add_argument("--poll", type=non_negative_seconds, default=1.0, metavar="S",
                         help="seconds between status checks while a server's websocket is "
                              "down or quiet (default 1)")
    servers.add_argument("--no-websocket", action="store_true",
                         help="follow jobs by polling only, every --poll seconds (default: "
                              "through each server's websocket events, refilling a slot the "
                              "moment a job ends, polling only while a websocket is down)")
    servers.add_argument("--grace", type=non_negative_seconds, default=60.0, metavar="S",
                         help="after Ctrl-C, wait up to S seconds for jobs in flight (default 60)")
    servers.add_argument("--give-up-after", type=non_negative_seconds, default=600.0,
                         metavar="S",
                         help="end the run when no server answered for S seconds (how long "
                              "a server that worked and went away, e.g. restarting, is waited "
                              "for; see --first-answer-within for one that never worked); a job "
                              "whose "
                              "result cannot be read for S seconds after it left the server's "
                              "queue fails its attempt; see also --timeout (default 600)")
    servers.add_argument("--max-failures", type=non_negative_int, default=0, metavar="N",
                         help="stop submitting after N failed jobs (default 0: no limit)")
    _add_dead_server_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--dry-run", action="store_true",
                        help="print what would be queued and the inputs set; contact no server")
    output.add_argument("--summary-json", metavar="PATH",
                        help="also write the summary as JSON to PATH")


def _add_dead_server_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = QueueOptions()
    dead = parser.add_argument_group(
        "dead servers (0 turns a limit off)",
        "Until a server has answered successfully (accepted a job, reported its queue, or\n"
        "rejected a graph as invalid) nothing shows that it will ever work, so the run gives up\n"
        "early; after that, failures are retried as faults that pass.")
    dead.add_argument("--submit-within", type=non_negative_seconds,
                      default=defaults.submit_within, metavar="S",
                      help="a sample that no server accepted S seconds after its first try "
                           "fails: always when servers answered but refused it (HTTP 5xx, not "
                           "JSON), and for unreachable servers while none has answered yet; "
                           "long enough for a few retries of a server that restarts "
                           f"(default {defaults.submit_within:g})")
    dead.add_argument("--first-answer-within", type=non_negative_seconds,
                      default=defaults.first_answer_within, metavar="S",
                      help="end the run (exit 1) if no server has answered successfully S "
                           "seconds after the start: longer than ComfyUI usually takes to start, "
                           "short enough that a wrong URL costs little; raise it for servers "
                           f"that start slowly (default {defaults.first_answer_within:g})")
    dead.add_argument("--first-answer-failures", type=non_negative_int,
                      default=defaults.first_answer_failures, metavar="N",
                      help="end the run (exit 1) once N samples have failed while no server "
                           "has answered successfully yet: the rest would fail the same way "
                           f"(default {defaults.first_answer_failures})")


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
    _add_which_arguments(parser)
    _add_job_arguments(parser)
    return parser


def _bounded_index(text: str, what: str) -> int:
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit():
        raise ValueError(f"{what}: {text!r} is not a whole number")
    if len(digits) > 20:  # int() of a huge digit string is slow; no index is this long
        raise ValueError(f"{what}: {text} is far above the largest sample index, 2**53 = "
                         f"{MAX_SAMPLE_INDEX}")
    return int(text)


def parse_range(text: str) -> range:
    """``"100:200"`` -> ``range(100, 200)`` (the end is excluded, as in Python slices).

    ``0 <= A <= B <= 2**53`` (the largest sample index the nodes accept is ``2**53 - 1``);
    the range is not expanded (:class:`~.jobs.IndexSource` walks it lazily).
    """
    start, sep, stop = str(text).partition(":")
    if not sep:
        raise ValueError(f"--range must look like A:B with whole numbers (B excluded), "
                         f"got {text!r}.")
    try:
        first, end = _bounded_index(start, "--range A"), _bounded_index(stop, "--range B")
    except ValueError as error:
        raise ValueError(f"{error}; --range must look like A:B with whole numbers "
                         "(B excluded).") from None
    if first < 0 or end < first:
        raise ValueError(f"--range {text!r} must satisfy 0 <= A <= B.")
    if end > MAX_SAMPLE_INDEX:
        raise ValueError(f"--range {text!r}: B must be at most 2**53 = {MAX_SAMPLE_INDEX} (the "
                         "largest sample index the LD-Portrait nodes accept is 2**53 - 1).")
    return range(first, end)


def indices_from_args(args) -> range:
    """The sample indices ``--range`` or ``--start``/``--count`` name (ValueError if neither)."""
    if getattr(args, "index_range", None):
        if args.start is not None or args.count is not None:
            raise ValueError("use either --range A:B or --start/--count, not both.")
        return parse_range(args.index_range)
    if args.count is None:
        raise ValueError("say which samples to queue: --count K (with --start N, default 0) or "
                         "--range A:B.")
    start = args.start or 0
    if start + args.count > MAX_SAMPLE_INDEX:
        raise ValueError(f"--start + --count must be at most 2**53 = {MAX_SAMPLE_INDEX} (the "
                         "largest sample index the LD-Portrait nodes accept is 2**53 - 1).")
    return range(start, start + args.count)


class _QueueStopFlag(StopFlag):
    """Ctrl-C for the queue: the first press asks the runner to stop submitting and wait for
    jobs in flight; the second stops waiting (no KeyboardInterrupt: the summary still prints)."""

    def __init__(self, runner: QueueRunner, stream):
        super().__init__(stream)
        self.runner = runner

    def _handle(self, signum, frame):
        if self.requested:
            self.runner.stop(now=True)
            return
        self.requested = True
        self.runner.console.log(
            f"\nstopping: no new jobs; waiting up to {self.runner.options.grace:g} s for "
            f"{self.runner.in_flight_count()} job(s) in flight (Ctrl-C again to stop now)...")
        self.runner.stop()


def _options_from_args(args, base: QueueOptions) -> QueueOptions:
    return dataclasses.replace(
        base, in_flight=args.in_flight, retries=args.retries, timeout=args.timeout or None,
        seed=args.seed, client_id=args.client_id, keep_sampler_seed=args.keep_sampler_seed,
        allow_no_template=args.allow_no_template, dataset_name=args.dataset_name,
        verify=not args.no_verify, poll_interval=args.poll or base.poll_interval,
        events=base.events and not args.no_websocket,
        grace=args.grace, give_up_after=args.give_up_after, max_failures=args.max_failures,
        submit_within=args.submit_within, first_answer_within=args.first_answer_within,
        first_answer_failures=args.first_answer_failures)


def _write_summary_json(path: str, summary, stderr) -> bool:
    try:
        Path(path).write_text(json.dumps(summary.to_json(), indent=1) + "\n", encoding="utf-8")
    except OSError as error:
        stderr.write(f"ld-portrait queue: cannot write {path}: {error}\n")
        return False
    return True


def run_queue_command(args, *, stdout=None, stderr=None, options: QueueOptions | None = None
                      ) -> int:
    """Run ``ld-portrait queue`` from parsed ``args`` (see :func:`add_queue_arguments`).

    Prints progress and warnings on ``stderr`` and the summary on ``stdout``; returns the exit
    code. ``options`` (tests) supplies defaults for the settings that have no flag.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    try:
        indices = indices_from_args(args)
        graph = load_workflow(args.workflow)
        opts = _options_from_args(args, options or QueueOptions())
        runner = QueueRunner(graph, indices, args.server or ["http://127.0.0.1:8188"],
                             dataset_root=args.dataset, options=opts, stream=stderr)
    except ValueError as error:  # WorkflowError included
        stderr.write(f"ld-portrait queue: error: {error}\n")
        return EXIT_USAGE
    if args.dry_run:
        stdout.write(runner.plan_text() + "\n")
        return EXIT_OK
    try:
        with _QueueStopFlag(runner, stderr):
            summary = runner.run()
    except (QueueSetupError, DatasetError, OSError) as error:  # e.g. an unreadable --dataset
        stderr.write(f"ld-portrait queue: error: {error}\n")
        return EXIT_FAILED
    stdout.write(summary.to_text() + "\n")
    stdout.flush()
    if args.summary_json and not _write_summary_json(args.summary_json, summary, stderr):
        return max(summary.exit_code, EXIT_FAILED)
    return summary.exit_code


def register(commands) -> None:
    """Add ``ld-portrait queue`` to the ``ld-portrait`` sub-command parsers."""
    parser = commands.add_parser("queue", help=QUEUE_HELP)
    add_queue_arguments(parser)
    parser.set_defaults(handler=lambda args, stdout, stderr: run_queue_command(
        args, stdout=stdout, stderr=stderr))


def main(argv=None, *, stdout=None, stderr=None) -> int:
    """Standalone ``ld-portrait queue`` (``python -m comfyui_ld_portrait.cli.queue ...``)."""
    parser = add_queue_arguments(argparse.ArgumentParser(prog="ld-portrait queue"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    return run_queue_command(args, stdout=stdout, stderr=stderr)
