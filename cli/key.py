"""``ld-portrait key INPUT_DIR OUTPUT_DIR``: key green/blue-screen PNGs into a matting dataset."""
from __future__ import annotations

from pathlib import Path

from .common import (EXIT_FAILED, JobErrors, JobProgress, add_image_limit_options,
                     add_replace_changed_option, add_setting_option, add_shard_option,
                     add_workers_option, count_input_pngs, image_limit_kwargs, non_negative_int,
                     print_summary, run_exit_code, run_job, usage_error, workers_from_args)

__all__ = ["register"]


def register(commands) -> None:
    from ..matting.params import KeyParams

    key = commands.add_parser(
        "key", help="chroma-key green/blue-screen PNGs into a matting dataset",
        description="Key every PNG in INPUT_DIR (sorted by name; green or blue screen "
                    "photographs, e.g. SDXL portraits generated on a plain green screen) with a "
                    "colour-difference keyer (clean plate for uneven screens, clip black/white, "
                    "spill suppression) and write the same dataset layout as `refine` to "
                    "OUTPUT_DIR: fg/, alpha/, meta/, manifest.jsonl. Re-running resumes: "
                    "complete samples are skipped, a file whose content changed since its "
                    "sample was made is listed (see --replace-changed). Exit codes: 0 done "
                    "(failed files are listed), 1 no PNG in INPUT_DIR or the dataset cannot be "
                    "written, 2 bad arguments, 130 interrupted.")
    key.add_argument("input_dir", metavar="INPUT_DIR", help="folder of PNG photographs")
    key.add_argument("output_dir", metavar="OUTPUT_DIR", help="dataset root (created if missing)")
    key.add_argument("--key-colour", "--key-color", dest="key_colour", default="auto",
                     help="screen colour: auto (from the image border, default), green, blue, "
                          "#RRGGBB, R,G,B (0..255) or R,G,B (0..1)")
    add_setting_option(key, KeyParams, "clip_black")
    add_setting_option(key, KeyParams, "clip_white")
    add_setting_option(key, KeyParams, "spill_strength", "--spill")
    add_setting_option(key, KeyParams, "edge_softness", "--softness")
    key.add_argument("--no-plate", action="store_true",
                     help="use the single key colour instead of a per-pixel clean plate")
    key.add_argument("--no-gate", action="store_true",
                     help="accept every keyed image (default: judge with the quality gate)")
    key.add_argument("--16bit", dest="sixteen_bit", action="store_true",
                     help="store alpha mattes as 16-bit PNG (default 8-bit)")
    key.add_argument("--limit", type=non_negative_int, metavar="N",
                     help="process at most N new files in this run (resumable)")
    add_replace_changed_option(key)
    add_image_limit_options(key)
    add_workers_option(key, "files")
    add_shard_option(key)
    key.add_argument("--json", action="store_true", help="print the summary as JSON")
    key.set_defaults(handler=run_key)


def run_key(args, stdout, stderr) -> int:
    from ..dataset import DatasetError
    from ..matting.keying import KeyParams, parse_key_colour
    from ..pipeline.keying_folder import KeyOptions, key_folder
    from ..pipeline.summary import OUTCOME_LABELS
    from .refine import recorded_command_line

    try:
        params = KeyParams(key_colour=parse_key_colour(args.key_colour),
                           clip_black=args.clip_black, clip_white=args.clip_white,
                           spill_strength=args.spill, edge_softness=args.softness,
                           plate=not args.no_plate)
        options = KeyOptions(key=params, alpha_bits=16 if args.sixteen_bit else 8,
                             limit=args.limit, gate=not args.no_gate,
                             replace_changed=args.replace_changed, **image_limit_kwargs(args))
    except ValueError as error:
        return usage_error(stderr, str(error))
    input_dir = Path(args.input_dir)
    if not input_dir.is_dir():
        return usage_error(stderr, f"input folder {input_dir} does not exist or is not a folder.")
    total = count_input_pngs(input_dir, stderr, args.shard)
    if total is None:
        return EXIT_FAILED
    # The same words as refine: "failed NAME: why" as it happens and "1 failed" in the counts.
    progress = JobProgress(stderr, "key", total=total, labels=OUTCOME_LABELS)
    # No input PNG (NoInputImagesError, nothing created) and an unwritable output: exit 1.
    run, code = run_job(
        lambda stop: key_folder(input_dir, args.output_dir, options,
                                progress=progress.on_file_event, should_stop=stop,
                                command_line=recorded_command_line(args),
                                workers=workers_from_args(args), shard=args.shard),
        progress, stderr, JobErrors(usage=(ValueError,), fatal=(DatasetError, OSError)),
        final_line=False)
    if code is not None:
        return code
    print_summary(stdout, run, args.json)
    return run_exit_code(run, stderr)
