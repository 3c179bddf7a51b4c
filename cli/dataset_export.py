"""``ld-portrait dataset export ROOT DEST --layout am2k|p3m|comp1k|hf|webdataset``: write a
dataset in the folder layout of a common matting dataset (the work is in
:mod:`..dataset.export`) or as Parquet / tar shards (:mod:`..dataset.export_shards`)."""
from __future__ import annotations

import argparse
import functools

from .common import (JobErrors, JobProgress, add_workers_option, float_argument,
                     non_negative_int, positive_int, print_summary, run_exit_code, run_job,
                     usage_error, workers_from_args)

__all__ = ["register_dataset_action"]

_DESCRIPTION = (
    "Composite each accepted foreground of ROOT over backgrounds and write DEST in the layout "
    "of a common matting dataset: am2k (train/{original,mask,fg,bg}, validation/{original,mask,"
    "trimap}), p3m (train/{blurred_image,mask,fg,bg}, validation/P3M-500-P/{blurred_image,mask,"
    "trimap}) or comp1k (Training_set and Test_set with fg/, alpha/, merged/, bg/, Test_set/"
    "trimaps/ and the *_fg_names.txt / *_bg_names.txt lists). The split, order and "
    "backgrounds follow --seed, so the same command gives the same files; re-running resumes "
    "(complete files are skipped). --layout hf writes Parquet shards that Hugging Face "
    "`datasets.load_dataset(\"parquet\", data_dir=DEST)` reads (fg and alpha as image "
    "columns), --layout webdataset tar shards (<id>.fg.png, <id>.alpha.png, <id>.json); both "
    "about --shard-mb each, listed with their sha256 in DEST/SHA256SUMS, the same split and "
    "--limit subsets; re-running resumes after the last complete shard.")


def _split_fraction(text: str) -> float:
    value = float_argument(text, "a fraction such as 0.9")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _shard_megabytes(text: str) -> float:
    value = float_argument(text, "a size in megabytes such as 256")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive size in megabytes, got {text!r}")
    return value


def register_dataset_action(actions) -> None:
    """Add ``export`` under ``ld-portrait dataset``."""
    export = actions.add_parser(
        "export", help="write the dataset in AM-2K, P3M or Composition-1k layout",
        description=_DESCRIPTION,
        epilog="Exit codes: 0 done, 1 a sample or DEST could not be written, 2 bad arguments "
               "or input, 130 interrupted (run the same command to resume).")
    export.add_argument("root", metavar="ROOT", help="ld-portrait dataset (fg/, alpha/, meta/)")
    export.add_argument("dest", metavar="DEST",
                        help="export folder: new, empty, or an earlier export with the same "
                             "options (resumed); not inside ROOT")
    export.add_argument("--layout", required=True,
                        choices=("am2k", "p3m", "comp1k", "hf", "webdataset"),
                        help="which dataset's folder layout to write, or hf (Parquet shards "
                             "for Hugging Face datasets) / webdataset (tar shards)")
    export.add_argument("--backgrounds", metavar="DIR",
                        help="folder of background pictures (default: procedural backgrounds)")
    export.add_argument("--per-fg", type=positive_int, default=1, metavar="N",
                        help="composites per foreground (default 1)")
    export.add_argument("--split", type=_split_fraction, default=0.9, metavar="F",
                        help="fraction of foregrounds for training, the rest validates "
                             "(default 0.9)")
    export.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                        help="seed of the split order and the backgrounds (default 0)")
    export.add_argument("--limit", metavar="N,...",
                        help="nested training subsets of N foregrounds each, e.g. "
                             "1000,5000,20000 -> DEST/limit_01000/ ... (each a prefix of the next)")
    export.add_argument("--image-format", choices=("jpg", "png"),
                        help="encoding of the composites (default: jpg for am2k and p3m as "
                             "those datasets ship, png for comp1k)")
    export.add_argument("--jpeg-quality", type=positive_int, default=95, metavar="Q",
                        help="JPEG quality 1..100 (default 95)")
    export.add_argument("--trimap-band", type=non_negative_int, default=0, metavar="PX",
                        help="unknown band of the trimaps in pixels around the soft region "
                             "(default 0 = 1%% of the longer side, at least 3)")
    export.add_argument("--shard-mb", type=_shard_megabytes, default=256.0, metavar="MB",
                        help="hf and webdataset: shard size in megabytes of samples (default "
                             "256; a larger sample gets a shard of its own)")
    add_workers_option(export, "composites (am2k, p3m, comp1k; hf and webdataset shards "
                               "are written by one process)")
    export.add_argument("--json", action="store_true", help="print the summary as JSON")
    export.set_defaults(handler=run_export)


def _shard_options_used(args) -> list[str]:
    """Folder-layout options given with a shard layout (they would be silently ignored)."""
    defaults = {"backgrounds": None, "per_fg": 1, "image_format": None, "jpeg_quality": 95,
                "trimap_band": 0}
    return [f"--{name.replace('_', '-')}" for name, default in defaults.items()
            if getattr(args, name) != default]


def run_export(args, stdout, stderr) -> int:
    from ..dataset import DatasetError
    from ..dataset.export import ExportError, ExportOptions, export_dataset, parse_limits
    from ..dataset.export_shards import SHARD_LAYOUTS, ShardOptions, export_shards

    try:
        limits = parse_limits(args.limit) if args.limit is not None else ()
        if args.layout in SHARD_LAYOUTS:
            unused = _shard_options_used(args)
            if unused:
                raise ExportError(f"--layout {args.layout} stores the foregrounds and mattes "
                                  f"themselves, no composites: leave out {', '.join(unused)}.")
            options = ShardOptions(layout=args.layout, split=args.split, seed=args.seed,
                                   limits=limits, shard_mb=args.shard_mb).checked()
            export = export_shards
        else:
            options = ExportOptions(layout=args.layout, backgrounds=args.backgrounds,
                                    per_fg=args.per_fg, split=args.split, seed=args.seed,
                                    limits=limits, image_format=args.image_format,
                                    jpeg_quality=args.jpeg_quality,
                                    trimap_band=args.trimap_band).checked()
            export = functools.partial(export_dataset, workers=workers_from_args(args))
    except ExportError as error:
        return usage_error(stderr, str(error))
    progress = JobProgress(stderr, "export")
    result, code = run_job(
        lambda stop: export(
            args.root, args.dest, options, should_stop=stop,
            progress=lambda event: progress(event.done, event.total, event.outcome, event.name,
                                            event.detail)),
        progress, stderr, JobErrors(usage=(ExportError,), fatal=(DatasetError, OSError),
                                    describe=_describe_write_error))
    if code is not None:
        return code
    print_summary(stdout, result, args.json)
    return run_exit_code(result, stderr, failed=bool(result.failures))


def _describe_write_error(error) -> str:
    """An OSError's reason and file name (``No space left on device (DEST/x.png)``)."""
    filename = getattr(error, "filename", None)
    return (f"{getattr(error, 'strerror', None) or error}"
            f"{f' ({filename})' if filename else ''}")
