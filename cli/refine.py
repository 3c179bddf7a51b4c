"""``ld-portrait refine INPUT_DIR OUTPUT_DIR``: a folder of RGBA PNGs -> a matting dataset.

Also the options and the runner that ``ld-portrait demo`` (:mod:`.demo`) shares with it. The
work is :func:`..pipeline.folder.refine_folder`; this module parses, checks and prints.
"""
from __future__ import annotations

import argparse
import textwrap

from .common import (EXECUTION_OPTIONS, EXIT_FAILED, JobErrors, JobProgress,
                     add_image_limit_options, add_replace_changed_option, add_shard_option,
                     add_workers_option, count_input_pngs, image_limit_kwargs,
                     non_negative_int, parse_assignments, print_summary, run_exit_code, run_job,
                     usage_error, workers_from_args)

__all__ = ["register", "add_refine_options", "run_refine_like", "refine_options_from_args",
           "refine_like_parser", "recorded_command_line"]


def recorded_command_line(args) -> dict:
    """The parsed command line as every sample's meta records it (through the run's
    provenance document): each option with its value, defaults included, except those that
    only say how the run is carried out (:data:`.common.EXECUTION_OPTIONS`: --workers,
    --shard), so that all shards of a run record one settings document."""
    values = {key: value for key, value in vars(args).items()
              if key != "handler" and key not in EXECUTION_OPTIONS and not callable(value)}
    return {"program": "ld-portrait", **values}


def _parameter_epilog() -> str:
    """The valid ``--param`` and ``--gate`` names with ranges and help, from the dataclass
    fields (``refine/connectivity.py`` RefineParams, ``refine/quality.py`` QualityThresholds)."""
    from ..pipeline.params import describe_fields
    from ..refine.refine_params import RefineParams
    from ..refine.quality_params import QualityThresholds

    return ("--param NAME=VALUE (refinement; 'auto' = scaled with the image):\n"
            f"{describe_fields(RefineParams)}\n\n"
            "--gate NAME=VALUE (quality gate):\n"
            f"{describe_fields(QualityThresholds)}")


def add_refine_options(sub, *, demo: bool) -> None:
    """The options ``refine`` and ``demo`` share (``demo`` keeps error maps and rejects)."""
    if not demo:
        sub.add_argument("--error-maps", action="store_true",
                         help="also write error-map pictures to OUTPUT_DIR/error_maps/")
        sub.add_argument("--keep-rejected", action="store_true",
                         help="write the images of samples the quality gate rejects under "
                              "OUTPUT_DIR/rejected/ (their verdict is always recorded there)")
        sub.add_argument("--limit", type=non_negative_int, metavar="N",
                         help="process at most N new files in this run (resumable)")
        add_replace_changed_option(sub)
        add_image_limit_options(sub)
    sub.add_argument("--16bit", dest="sixteen_bit", action="store_true",
                     help="store alpha mattes as 16-bit PNG (default 8-bit)")
    sub.add_argument("--no-raw-alpha", action="store_true",
                     help="do not keep the alpha before refinement in raw_alpha/")
    sub.add_argument("--gate", action="append", metavar="NAME=VALUE",
                     help="quality-gate threshold, e.g. --gate min_side=128 (repeatable; "
                          "names and ranges below)")
    sub.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="refinement parameter, e.g. --param reach=20 (repeatable; "
                          "names and ranges below)")
    sub.add_argument("--json", action="store_true",
                     help="print the summary as JSON on stdout")


def refine_options_from_args(args, *, demo: bool):
    """:class:`..pipeline.portrait.RefineOptions` from parsed arguments.

    Raises ValueError (a usage error) for a malformed, unknown or out-of-range NAME=VALUE."""
    from ..pipeline.params import check_overrides
    from ..pipeline.portrait import RefineOptions
    from ..refine.refine_params import RefineParams
    from ..refine.quality_params import QualityThresholds

    try:
        gate = parse_assignments(args.gate, "--gate")
        params = parse_assignments(args.param, "--param")
    except argparse.ArgumentTypeError as error:
        raise ValueError(str(error)) from None
    check_overrides(gate, QualityThresholds, "--gate quality threshold")
    check_overrides(params, RefineParams, "--param refinement parameter")
    limits = {} if demo else image_limit_kwargs(args)
    return RefineOptions(
        error_maps=True if demo else args.error_maps,
        keep_rejected=True if demo else args.keep_rejected,
        alpha_bits=16 if args.sixteen_bit else 8,
        store_raw_alpha=not args.no_raw_alpha,
        limit=None if demo else args.limit,
        refine_params=params,
        gate=gate, **limits)


def refine_like_parser(commands, name: str, *, help: str, description: str,
                       exit_codes: str = ""):
    """The parser of ``refine`` or ``demo``: ``description`` (and ``exit_codes``, after the
    parameter names) wrapped at 78 columns, the ``--param``/``--gate`` names in the epilog."""
    epilog = _parameter_epilog()
    if exit_codes:
        epilog += "\n\n" + textwrap.fill(exit_codes, width=78)
    return commands.add_parser(name, help=help, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               description=textwrap.fill(description, width=78))


def register(commands) -> None:
    """Add ``refine`` to the ``ld-portrait`` sub-commands."""
    refine = refine_like_parser(
        commands, "refine", help="turn a folder of RGBA PNGs into a matting dataset",
        description="Refine every RGBA PNG in INPUT_DIR (sorted by name; sub-folders are not "
                    "scanned) and write the dataset layout to OUTPUT_DIR: fg/, alpha/, "
                    "raw_alpha/, meta/, manifest.jsonl. Re-running resumes: complete samples "
                    "are skipped; a file whose content changed since its sample was made (the "
                    "meta records its sha256) is listed, not skipped (see --replace-changed). "
                    "A file that cannot be used (unreadable, over the size limits, "
                    "not RGBA) is reported by name and the run goes on.",
        exit_codes="Exit codes: 0 done (failed files are listed), 1 no PNG in INPUT_DIR or the "
                   "dataset cannot be written (disk full), 2 bad arguments, 130 interrupted "
                   "(run the same command to resume).")
    refine.add_argument("input_dir", metavar="INPUT_DIR", help="folder of RGBA PNG files")
    refine.add_argument("output_dir", metavar="OUTPUT_DIR",
                        help="dataset root (created if missing; not inside INPUT_DIR)")
    add_refine_options(refine, demo=False)
    add_workers_option(refine, "files")
    add_shard_option(refine)
    refine.set_defaults(handler=run_refine_like)


def _check_refine_folders(args, stderr) -> int | None:
    """Usage errors found before anything is created or printed (exit 2), else None."""
    from ..pipeline.folder import check_folders

    try:
        check_folders(args.input_dir, args.output_dir)
    except (FileNotFoundError, ValueError) as error:
        return usage_error(stderr, str(error))
    return None


def run_refine_like(args, stdout, stderr) -> int:
    """Handler of ``refine`` and ``demo``: returns the exit code."""
    from ..dataset import DatasetError
    from ..pipeline.demo import run_demo
    from ..pipeline.folder import refine_folder
    from ..pipeline.summary import OUTCOME_LABELS

    demo = args.command == "demo"
    try:
        options = refine_options_from_args(args, demo=demo)
    except ValueError as error:
        return usage_error(stderr, str(error))
    if demo:
        total = args.count
    else:
        refused = _check_refine_folders(args, stderr)
        if refused is not None:
            return refused
        total = count_input_pngs(args.input_dir, stderr, args.shard)
        if total is None:
            return EXIT_FAILED
    progress = JobProgress(stderr, "demo" if demo else "refine", total=total,
                           labels=OUTCOME_LABELS)

    def work(stop):
        if demo:
            return run_demo(args.output_dir, count=args.count, size=args.size, seed=args.seed,
                            options=options, progress=progress.on_file_event,
                            should_stop=stop)
        return refine_folder(args.input_dir, args.output_dir, options,
                             progress=progress.on_file_event, should_stop=stop,
                             replace_changed=args.replace_changed,
                             command_line=recorded_command_line(args),
                             workers=workers_from_args(args), shard=args.shard)

    # No input PNG (NoInputImagesError) and unwritable output are fatal (exit 1); bad demo
    # arguments and overlapping folders are usage errors. The summary below gives the counts
    # and the one duration, so the bar prints no line of its own.
    result, code = run_job(work, progress, stderr,
                           JobErrors(usage=(ValueError,), fatal=(DatasetError, OSError)),
                           final_line=False)
    if code is not None:
        return code
    print_summary(stdout, result, args.json, ensure_ascii=False)
    return run_exit_code(result.run if demo else result, stderr)
