"""The ``ld-portrait`` command.

``ld-portrait refine INPUT_DIR OUTPUT_DIR``  folder of RGBA PNGs -> matting dataset
``ld-portrait demo OUTPUT_DIR``              synthetic portraits -> dataset + contact sheet
``ld-portrait dataset verify ROOT``          consistency check (``--repair`` rebuilds the manifest)
``ld-portrait dataset stats ROOT``           counts, attribute histograms, coverage, reject reasons
``ld-portrait dataset sheet ROOT OUT.png``   contact sheet: composites on varied backgrounds + mattes
``ld-portrait queue WORKFLOW_API_JSON ...``  drive ComfyUI servers over their HTTP API (serverqueue.py)
``ld-portrait models download``              the Layer Diffusion weight files (modeldownload.py)
``ld-portrait --version``

Adding a command: write ``_add_<name>_command(commands)`` that creates its sub-parser and
sets ``handler=`` (a function ``(args, stdout, stderr) -> exit code``) with ``set_defaults``,
and call it from :func:`build_parser`; :func:`main` dispatches on ``args.handler``. Dataset
actions are added the same way under ``dataset`` (see ``_add_dataset_command``).

This module only parses arguments and prints; the work is done by
:mod:`comfyui_ld_portrait.batch` and :mod:`comfyui_ld_portrait.dataset`.

Exit codes: 0 the run completed (files that could not be read are reported and skipped);
1 an unrecoverable error (output not writable, disk full); 2 bad arguments; 130 interrupted
with Ctrl-C (everything written so far is complete: run the same command to continue).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "ProgressBar"]

from .common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ProgressBar,  # noqa: F401
                     StopFlag, non_negative_int, parse_assignments, positive_int, usage_error)


def build_parser() -> argparse.ArgumentParser:
    from ..dataset.version import tool_version

    parser = argparse.ArgumentParser(
        prog="ld-portrait",
        description="Portrait mattes with Layer Diffusion and connectivity priors: refine "
                    "RGBA portraits into a matting dataset.",
        epilog="Exit codes: 0 done (unreadable files are reported and skipped), 1 unrecoverable "
               "error, 2 bad arguments, 130 interrupted (run the same command to resume).")
    parser.add_argument("--version", action="version", version=f"ld-portrait {tool_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_refine_options(sub, *, demo: bool):
        if not demo:
            sub.add_argument("--error-maps", action="store_true",
                             help="also write error-map pictures to OUTPUT_DIR/error_maps/")
            sub.add_argument("--keep-rejected", action="store_true",
                             help="write the images of samples the quality gate rejects under "
                                  "OUTPUT_DIR/rejected/ (their verdict is always recorded there)")
            sub.add_argument("--limit", type=non_negative_int, metavar="N",
                             help="process at most N new files in this run (resumable)")
        sub.add_argument("--16bit", dest="sixteen_bit", action="store_true",
                         help="store alpha mattes as 16-bit PNG (default 8-bit)")
        sub.add_argument("--no-raw-alpha", action="store_true",
                         help="do not keep the alpha before refinement in raw_alpha/")
        sub.add_argument("--gate", action="append", metavar="NAME=VALUE",
                         help="quality-gate threshold, e.g. --gate min_side=128 (repeatable; see "
                              "refine/quality.py for names)")
        sub.add_argument("--param", action="append", metavar="NAME=VALUE",
                         help="refinement parameter, e.g. --param band_width=20 (repeatable; "
                              "see refine/connectivity.py)")
        sub.add_argument("--json", action="store_true",
                         help="print the summary as JSON on stdout")

    refine = commands.add_parser(
        "refine", help="turn a folder of RGBA PNGs into a matting dataset",
        description="Refine every RGBA PNG in INPUT_DIR (sorted by name; sub-folders are not "
                    "scanned) and write the dataset layout to OUTPUT_DIR: fg/, alpha/, "
                    "raw_alpha/, meta/, manifest.jsonl. Re-running resumes: complete samples "
                    "are skipped. Files that are not readable RGBA PNGs are reported and skipped.")
    refine.add_argument("input_dir", metavar="INPUT_DIR", help="folder of RGBA PNG files")
    refine.add_argument("output_dir", metavar="OUTPUT_DIR", help="dataset root (created if missing)")
    add_refine_options(refine, demo=False)
    refine.set_defaults(handler=_run_refine_like)

    demo = commands.add_parser(
        "demo", help="synthetic portraits -> dataset + contact sheet (no models needed)",
        description="Synthesise portraits with Layer-Diffusion-like alpha artifacts, write them "
                    "to OUTPUT_DIR/input/, refine them exactly like `refine` into "
                    "OUTPUT_DIR/dataset/ and draw OUTPUT_DIR/contact_sheet.png.")
    demo.add_argument("output_dir", metavar="OUTPUT_DIR")
    demo.add_argument("--count", type=int, default=8, help="number of portraits (default 8)")
    demo.add_argument("--size", type=int, default=512, help="portrait side in pixels (default 512)")
    demo.add_argument("--seed", type=int, default=0, help="first synthesis seed (default 0)")
    add_refine_options(demo, demo=True)
    demo.set_defaults(handler=_run_refine_like)

    _add_dataset_command(commands)
    _add_queue_command(commands)
    from ..layerdiffusion import download as modeldownload

    modeldownload.register(commands)
    for module in _command_modules():
        register = getattr(module, "register", None)
        if register is not None:
            register(commands)
    return parser


def _command_modules():
    """The sub-command modules of this package, by name: each module ``cli/<name>.py`` (or
    package) that defines ``register(commands)`` adds its sub-command(s); one that defines
    ``register_dataset_action(actions)`` adds an action under ``ld-portrait dataset``."""
    import importlib
    import pkgutil

    from . import __path__ as package_path

    skip = {"app", "common", "__main__"}
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda info: info.name):
        if info.name not in skip and not info.name.startswith("_"):
            yield importlib.import_module(f"{__package__}.{info.name}")


def _add_queue_command(commands) -> None:
    """``ld-portrait queue``: drive ComfyUI servers over their HTTP API (serverqueue.py)."""
    from . import queue as serverqueue

    queue = commands.add_parser("queue", help=serverqueue.QUEUE_HELP)
    serverqueue.add_queue_arguments(queue)
    queue.set_defaults(handler=lambda args, stdout, stderr: serverqueue.run_queue_command(
        args, stdout=stdout, stderr=stderr))


def _add_dataset_command(commands) -> None:
    """``ld-portrait dataset verify|stats|sheet``."""
    dataset = commands.add_parser("dataset", help="inspect a dataset root: verify, stats, sheet")
    dataset.set_defaults(handler=lambda args, stdout, stderr: _dataset_help(dataset, stdout))
    actions = dataset.add_subparsers(dest="dataset_command", metavar="ACTION")

    verify = actions.add_parser(
        "verify", help="check a dataset for missing files and manifest problems",
        description="Check that every sample's files exist and match its meta, and that "
                    "manifest.jsonl lists exactly the accepted samples. Exit 0 when consistent, "
                    "1 otherwise.")
    verify.add_argument("root", metavar="ROOT")
    verify.add_argument("--repair", action="store_true",
                        help="rebuild manifest.jsonl from meta/ when it has problems")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=_run_verify)

    stats = actions.add_parser(
        "stats", help="counts, attribute histograms, coverage, reject reasons, refinement",
        description="Print statistics of a dataset: accepted / rejected / incomplete counts, "
                    "image sizes, reject reasons, refinement measures (median changed fraction "
                    "...), attribute histograms with per-value reject rates, distinct attribute "
                    "combinations and prompts. Reads meta/ and the manifest; no image is opened.")
    stats.add_argument("root", metavar="ROOT")
    stats.add_argument("--top", type=positive_int, default=8, metavar="N",
                       help="entries shown per histogram (default 8; --json has all)")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(handler=_run_stats)

    sheet = actions.add_parser(
        "sheet", help="contact sheet: composites on varied backgrounds beside their mattes",
        description="Draw N accepted samples (drawn at random with --seed) as pairs: the "
                    "foreground composited over a procedural background (bokeh, studio, "
                    "gradient, noise, solid, checker in turn) and its alpha matte, like the "
                    "paper's Figure 5. The same arguments give the same picture.")
    sheet.add_argument("root", metavar="ROOT")
    sheet.add_argument("output", metavar="OUT.png", help="PNG file to write")
    sheet.add_argument("--count", type=positive_int, default=12, metavar="N",
                       help="samples on the sheet (default 12)")
    sheet.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                       help="which samples and backgrounds (default 0)")
    sheet.add_argument("--cell", type=positive_int, default=256, metavar="PX",
                       help="side of each picture in pixels (default 256, at least 32)")
    sheet.add_argument("--columns", type=positive_int, default=4, metavar="K",
                       help="samples per row (default 4)")
    sheet.set_defaults(handler=_run_sheet)
    for module in _command_modules():
        register_action = getattr(module, "register_dataset_action", None)
        if register_action is not None:
            register_action(actions)


def _dataset_help(parser, stdout) -> int:
    parser.print_help(stdout)
    return EXIT_USAGE


def _options(args, *, demo: bool):
    from ..pipeline.folder import RefineOptions

    try:
        gate = parse_assignments(args.gate, "--gate")
        params = parse_assignments(args.param, "--param")
    except argparse.ArgumentTypeError as error:
        raise ValueError(str(error)) from None
    return RefineOptions(
        error_maps=True if demo else args.error_maps,
        keep_rejected=True if demo else args.keep_rejected,
        alpha_bits=16 if args.sixteen_bit else 8,
        store_raw_alpha=not args.no_raw_alpha,
        limit=None if demo else args.limit,
        refine_params=params,
        gate=gate)


def _run_refine_like(args, stdout, stderr) -> int:
    from ..pipeline.folder import refine_folder, run_demo
    from ..dataset import DatasetError
    from ..dataset.imagefiles import list_pngs

    demo = args.command == "demo"
    try:
        options = _options(args, demo=demo)
    except ValueError as error:
        return usage_error(stderr, str(error))

    if demo:
        total = args.count
    else:
        input_dir = Path(args.input_dir)
        if not input_dir.is_dir():
            return usage_error(stderr, f"input folder {input_dir} does not exist or is not a "
                                        "folder.")
        total = len(list_pngs(input_dir))
    bar = ProgressBar(total, stream=stderr, label="demo" if demo else "refine")

    def on_progress(event):
        bar.update(event.done, event.outcome, event.file)
        if event.outcome == "failed":
            # Reported as it happens too, not only in the summary.
            if bar.enabled:
                stderr.write("\n")
            stderr.write(f"skipped {event.file}: {event.detail}\n")

    try:
        with StopFlag(stderr) as stop:
            if demo:
                result = run_demo(args.output_dir, count=args.count, size=args.size,
                                  seed=args.seed, options=options, progress=on_progress,
                                  should_stop=stop)
                run = result.run
            else:
                run = refine_folder(args.input_dir, args.output_dir, options,
                                    progress=on_progress, should_stop=stop)
                result = run
    except ValueError as error:  # includes bad demo arguments and input-inside-output
        if bar._drawn:
            stderr.write("\n")
        return usage_error(stderr, str(error))
    except (DatasetError, FileNotFoundError, OSError) as error:
        bar.finish()
        stderr.write(f"ld-portrait: error: {error}\n")
        return EXIT_FAILED
    bar.finish()
    if args.json:
        payload = result.run.to_json() if demo else result.to_json()
        if demo:
            payload = {"run": payload, "contact_sheet": result.contact_sheet,
                       "input_dir": result.input_dir, "dataset_dir": result.dataset_dir,
                       "sad_raw": result.sad_raw, "sad_refined": result.sad_refined}
        stdout.write(json.dumps(payload, indent=1) + "\n")
    else:
        stdout.write(result.to_text() + "\n")
    if run.fatal_error:
        stderr.write(f"ld-portrait: error: {run.fatal_error}\n")
        return EXIT_FAILED
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _run_verify(args, stdout, stderr) -> int:
    from ..dataset import DatasetError, verify

    try:
        report = verify(args.root, repair=args.repair)
    except DatasetError as error:
        stderr.write(f"ld-portrait: error: {error}\n")
        return EXIT_FAILED
    final = verify(args.root) if report.repaired else report
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
    except DatasetError as error:
        stderr.write(f"ld-portrait: error: {error}\n")
        return EXIT_FAILED
    if args.json:
        stdout.write(json.dumps(stats.to_json(), indent=1, ensure_ascii=False) + "\n")
    else:
        stdout.write(stats.to_text(top=args.top) + "\n")
    return EXIT_OK


def _run_sheet(args, stdout, stderr) -> int:
    from ..dataset.sheet import dataset_sheet
    from ..dataset import DatasetError
    from ..dataset.imagefiles import write_png_atomic

    if not str(args.output).lower().endswith(".png"):
        return usage_error(stderr, f"OUT.png must end in .png, got {args.output!r}.")
    try:
        sheet = dataset_sheet(args.root, count=args.count, seed=args.seed, cell=args.cell,
                              columns=args.columns)
    except ValueError as error:
        return usage_error(stderr, str(error))
    except (DatasetError, OSError) as error:
        stderr.write(f"ld-portrait: error: {error}\n")
        return EXIT_FAILED
    try:
        path = write_png_atomic(args.output, sheet)
    except OSError as error:
        stderr.write(f"ld-portrait: error: cannot write {args.output}: "
                     f"{error.strerror or error}\n")
        return EXIT_FAILED
    stdout.write(f"contact sheet: {path} ({sheet.shape[1]}x{sheet.shape[0]})\n")
    return EXIT_OK


def main(argv=None, *, stdout=None, stderr=None) -> int:
    """Entry point of the ``ld-portrait`` console script; returns the exit code.

    ``argv`` defaults to ``sys.argv[1:]``; ``stdout``/``stderr`` default to the process streams
    (tests pass their own).
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(stdout)
            return EXIT_USAGE
        return handler(args, stdout, stderr)
    except SystemExit as exit_:  # argparse errors and --help/--version
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        stderr.write("\nld-portrait: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
