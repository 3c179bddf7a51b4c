"""``ld-portrait dataset verify|stats|sheet|graph|... ROOT``: inspect a dataset root.

Further actions come from other modules of this package that define
``register_dataset_action(actions)`` (discovered by :func:`.app.command_modules`). The work is
in :mod:`..dataset`; this module parses and prints.
"""
from __future__ import annotations

import argparse
import json

from .common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, non_negative_int, positive_int, run_error,
                     usage_error, write_error)

__all__ = ["register"]


def _action_adders() -> list:
    """The functions that add the ``dataset`` actions: this module's, then those of every
    module defining ``register_dataset_action`` (``export``, ...)."""
    from .app import command_modules

    return [_add_verify, _add_stats, _add_sheet, _add_graph, _add_card] + [
        module.register_dataset_action for module in command_modules()
        if getattr(module, "register_dataset_action", None) is not None]


def _action_names(adders) -> list[str]:
    """The names the ``adders`` register, found on a scratch parser (so the one-line help of
    ``dataset`` lists the real actions, however many modules add some)."""
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    for add in adders:
        add(scratch)
    return list(scratch.choices)


def register(commands) -> None:
    """Add ``dataset`` and its actions to the ``ld-portrait`` sub-commands."""
    adders = _action_adders()
    dataset = commands.add_parser(
        "dataset", help=f"inspect or export a dataset root: {', '.join(_action_names(adders))}")
    dataset.set_defaults(handler=lambda args, stdout, stderr: _dataset_help(dataset, stdout))
    actions = dataset.add_subparsers(dest="dataset_command", metavar="ACTION")
    for add in adders:
        add(actions)


def _add_root_action(actions, name: str, handler, **parser):
    """An action over one dataset ROOT: ``add_parser(name, **parser)`` with the ROOT argument
    and ``handler``."""
    action = actions.add_parser(name, **parser)
    action.add_argument("root", metavar="ROOT")
    action.set_defaults(handler=handler)
    return action


def _add_json_option(action, what: str) -> None:
    """``--json``: print ``what`` as JSON (added last, so it is listed last in the help)."""
    action.add_argument("--json", action="store_true", help=f"print the {what} as JSON")


def _add_verify(actions) -> None:
    verify = _add_root_action(
        actions, "verify", _run_verify,
        help="check a dataset for missing files and manifest problems",
        description="Check that every sample's files exist and match its meta, and that "
                    "manifest.jsonl lists exactly the accepted samples. Exit 0 when consistent, "
                    "1 otherwise (also when ROOT is not a dataset).")
    verify.add_argument("--repair", action="store_true",
                        help="repair what is safe to repair: move unreadable meta files to "
                             "quarantine/, rebuild manifest.jsonl from meta/ when it has "
                             "problems, delete temporary files left by killed writers")
    _add_json_option(verify, "report")


def _add_stats(actions) -> None:
    stats = _add_root_action(
        actions, "stats", _run_stats,
        help="counts, attribute histograms, coverage, reject reasons, refinement",
        description="Print statistics of a dataset: accepted / rejected / incomplete counts, "
                    "image sizes, reject reasons, refinement measures (median changed fraction "
                    "...), attribute histograms with per-value reject rates, distinct attribute "
                    "combinations and prompts. Reads meta/ and the manifest; no image is opened. "
                    "Exit 1 when ROOT is not a dataset.")
    stats.add_argument("--top", type=positive_int, default=8, metavar="N",
                       help="entries shown per histogram (default 8; --json has all)")
    _add_json_option(stats, "statistics")


def _add_sheet(actions) -> None:
    sheet = _add_root_action(
        actions, "sheet", _run_sheet,
        help="contact sheet: composites on varied backgrounds beside their mattes",
        description="Draw N accepted samples (drawn at random with --seed) as pairs: the "
                    "foreground composited over a procedural background (bokeh, studio, "
                    "gradient, noise, solid, checker in turn) and its alpha matte, like the "
                    "paper's Figure 5. The same arguments give the same picture.")
    sheet.add_argument("output", metavar="OUT.png", help="PNG file to write")
    sheet.add_argument("--count", type=positive_int, default=12, metavar="N",
                       help="samples on the sheet (default 12)")
    sheet.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                       help="which samples and backgrounds (default 0)")
    sheet.add_argument("--cell", type=positive_int, default=256, metavar="PX",
                       help="side of each picture in pixels (default 256, at least 32)")
    sheet.add_argument("--columns", type=positive_int, default=4, metavar="K",
                       help="samples per row (default 4)")


def _add_graph(actions) -> None:
    graph = _add_root_action(
        actions, "graph", _run_graph,
        help="the API graph (or refine/key settings) that made a sample",
        description="Write the ComfyUI API graph that made sample ID (as ComfyUI ran it, with "
                    "the sample's index and seed), ready for `ld-portrait queue`, and say how "
                    "to queue it again. For a sample made by `ld-portrait refine` or `key`, "
                    "write that run's settings (command line and resolved parameters) instead. "
                    "ID is the sample id (e.g. 000123) or its sample index (123). The editor "
                    "graph is in the sample's fg PNG: drop it onto the ComfyUI canvas. Exit 1 "
                    "when the sample or its record is missing.")
    graph.add_argument("sample_id", metavar="ID", help="sample id, or sample index")
    graph.add_argument("-o", "--output", metavar="OUT.json",
                       help="file to write (default: print the JSON on stdout)")


def _add_card(actions) -> None:
    card = _add_root_action(
        actions, "card", _run_card,
        help="dataset card: README.md with the hub's YAML header, counts, licences, a sheet",
        description="Write README.md (a Hugging Face dataset card) for dataset ROOT: the YAML "
                    "header (licence derived from the models the samples' meta records, a "
                    "FLUX.1-dev-made set being non-commercial; task categories; size category), "
                    "a sample sheet (card/samples.png), counts, the models and their licences, "
                    "the gate's reject reasons, the attribute distribution, the refinement "
                    "measures and the citation. --output writes it into an export folder of "
                    "ROOT instead (with the configs of its hf shards).")
    card.add_argument("--output", metavar="DIR",
                      help="folder to write README.md into (default ROOT; e.g. an export)")
    card.add_argument("--no-pictures", action="store_true", help="leave out the sample sheet")


def _run_card(args, stdout, stderr) -> int:
    from ..dataset import DatasetError
    from ..dataset.card import write_dataset_card

    try:
        written = write_dataset_card(args.root, args.output, pictures=not args.no_pictures)
    except ValueError as error:
        return usage_error(stderr, str(error))
    except (DatasetError, OSError) as error:
        return run_error(stderr, error)
    stdout.write("".join(f"written: {path}\n" for path in written))
    return EXIT_OK


def _queue_hint(found, path: str) -> str:
    """How to queue a stored graph again so that it makes the same sample: the ``queue``
    options whose rewrite (:func:`.queue.graph.rewrite_graph`) leaves the graph as it ran."""
    from ..dataset import index_id
    from .queue.graph import check_api_graph, inspect_graph, rewrite_graph

    meta = found.meta
    lines = [f"sample {found.sample_id}: made by a ComfyUI graph"]
    index, batch_index = meta.get("sample_index"), meta.get("batch_index", 0)
    try:
        graph = check_api_graph(found.content, "the stored graph")
    except ValueError as error:
        return "\n".join(lines + [f"  the stored graph cannot be queued: {error}"])
    if not (isinstance(index, int) and isinstance(batch_index, int)):
        return "\n".join(lines + ["  its meta records no sample_index"])
    info = inspect_graph(graph)
    first = index - batch_index
    where = f"sample index {index}" + (
        f" (image {batch_index} of a batch starting at {first})" if batch_index else "")
    lines.append(f"  {where}, sampler seed {meta.get('seed', 'not recorded')}")
    base_seed = info.template_seed or 0
    options = [f"--start {first}", "--count 1"]
    if info.template_nodes:
        options.append(f"--seed {base_seed}")
    else:  # e.g. refine-a-folder: a counter node drives the index
        options.append("--allow-no-template")
    same = None
    for keep in (False, True):
        rewritten, _ = rewrite_graph(graph, first, base_seed=base_seed, keep_sampler_seed=keep,
                                     allow_no_template=not info.template_nodes)
        if rewritten == graph:
            same = keep
            break
    if same is None:
        lines.append("  note: the queue would change some inputs of this graph (see "
                     "`ld-portrait queue --dry-run`); the sample may not come out the same")
    elif same:
        options.append("--keep-sampler-seed")
    lines.append(f"  queue it again (same id {index_id(index)} and seed; into another dataset, "
                 f"as complete ids are skipped):\n    ld-portrait queue {path} "
                 f"{' '.join(options)} --dataset-name NEW_NAME")
    return "\n".join(lines)


def _run_graph(args, stdout, stderr) -> int:
    from ..dataset import DatasetError
    from ..dataset.imagefiles import write_bytes_atomic
    from ..dataset.provenance import GRAPH_KIND, sample_provenance

    try:
        found = sample_provenance(args.root, args.sample_id)
    except DatasetError as error:  # not a dataset, no such sample, nothing recorded
        return run_error(stderr, error)
    if args.output:
        try:
            write_bytes_atomic(args.output, found.payload)
        except OSError as error:
            return write_error(stderr, args.output, error)
    else:
        stdout.write(found.payload.decode("utf-8"))
    if found.kind == GRAPH_KIND:
        note = _queue_hint(found, args.output or "GRAPH.json")
    else:
        command = found.content.get("command") if isinstance(found.content, dict) else None
        note = (f"sample {found.sample_id}: made by `ld-portrait {command or '?'}`, not a "
                "ComfyUI graph; these are its settings (command line and resolved parameters)")
    # Notes go to stderr when the JSON is on stdout, so `> graph.json` stays pure JSON.
    (stdout if args.output else stderr).write(
        note + (f"\nwritten: {args.output}\n" if args.output else "\n"))
    return EXIT_OK


def _dataset_help(parser, stdout) -> int:
    parser.print_help(stdout)
    return EXIT_USAGE


def _run_verify(args, stdout, stderr) -> int:
    from ..dataset import DatasetError, verify

    try:
        report = verify(args.root, repair=args.repair)
        final = verify(args.root) if report.repaired else report
    except DatasetError as error:  # includes "not a dataset"
        return run_error(stderr, error)
    if args.json:
        payload = report.to_json()
        if report.repaired:
            payload["after_repair"] = final.to_json()
        stdout.write(json.dumps(payload, indent=1) + "\n")
    else:
        stdout.write(report.to_text() + "\n")
        if report.repaired:
            stdout.write("after repair: " + final.to_text() + "\n")
    return EXIT_OK if final.ok else EXIT_FAILED


def _run_stats(args, stdout, stderr) -> int:
    from ..dataset import DatasetError, dataset_stats

    try:
        stats = dataset_stats(args.root)
    except DatasetError as error:  # includes "not a dataset"
        return run_error(stderr, error)
    if args.json:
        stdout.write(json.dumps(stats.to_json(), indent=1, ensure_ascii=False) + "\n")
    else:
        stdout.write(stats.to_text(top=args.top) + "\n")
    return EXIT_OK


def _run_sheet(args, stdout, stderr) -> int:
    from ..dataset import DatasetError
    from ..dataset.imagefiles import write_png_atomic
    from ..dataset.sheet import dataset_sheet

    if not str(args.output).lower().endswith(".png"):
        return usage_error(stderr, f"OUT.png must end in .png, got {args.output!r}.")
    try:
        sheet = dataset_sheet(args.root, count=args.count, seed=args.seed, cell=args.cell,
                              columns=args.columns)
    except ValueError as error:
        return usage_error(stderr, str(error))
    except (DatasetError, OSError) as error:
        return run_error(stderr, error)
    try:
        path = write_png_atomic(args.output, sheet)
    except OSError as error:
        return write_error(stderr, args.output, error)
    stdout.write(f"contact sheet: {path} ({sheet.shape[1]}x{sheet.shape[0]})\n")
    return EXIT_OK
