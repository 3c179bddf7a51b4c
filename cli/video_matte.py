"""``ld-portrait video-matte FRAMES_DIR MASKS_DIR OUT_DIR``: temporally stable video matting."""
from __future__ import annotations

from pathlib import Path

from .common import (JobErrors, JobProgress, add_image_limit_options, add_setting_option,
                     image_limit_kwargs, print_summary, run_exit_code, run_job, usage_error)

__all__ = ["register"]


def register(commands) -> None:
    from ..matting.params import METHODS
    from ..matting.params import VideoMatteParams

    defaults = VideoMatteParams()
    video = commands.add_parser(
        "video-matte", help="frames + person masks -> temporally stable RGBA frames",
        description="Matte a clip: FRAMES_DIR holds the frames as PNG files (sorted by name = "
                    "time order), MASKS_DIR one 8-bit PNG mask per frame with the same file "
                    "name (white = person; any video segmentation's output). The masks are "
                    "stabilised over time (median + hysteresis), turned into trimaps whose "
                    "unknown band follows the motion, each frame is matted (pymatting "
                    "closed-form by default), alpha is smoothed over time on static parts, and "
                    "RGBA PNGs with the frames' names are written to OUT_DIR. Exit codes: 0 "
                    "done, 1 no PNG in FRAMES_DIR or OUT_DIR cannot be written, 2 bad arguments "
                    "or a mismatched clip, 130 interrupted.")
    video.add_argument("frames_dir", metavar="FRAMES_DIR", help="folder of frame PNGs")
    video.add_argument("masks_dir", metavar="MASKS_DIR", help="folder of mask PNGs, same names")
    video.add_argument("output_dir", metavar="OUT_DIR", help="folder for the RGBA PNGs")
    add_setting_option(video, VideoMatteParams, "band", metavar="PX")
    add_setting_option(video, VideoMatteParams, "motion_band", metavar="PX")
    add_setting_option(video, VideoMatteParams, "smoothing")
    add_setting_option(video, VideoMatteParams, "window")
    video.add_argument("--method", choices=sorted(METHODS), default=defaults.method,
                       help="matting solver (pymatting; default cf = closed-form)")
    video.add_argument("--independent", action="store_true",
                       help="no temporal stabilisation (each frame on its own, for comparison)")
    video.add_argument("--invert-masks", action="store_true",
                       help="masks are white = background")
    add_image_limit_options(video)
    video.add_argument("--json", action="store_true", help="print the summary as JSON")
    video.set_defaults(handler=run_video_matte)


def _pymatting_kernels_cached() -> bool:
    """Whether numba has cached pymatting's compiled kernels: ``*.nbi`` index files beside its
    modules, or (when the package folder is read-only) under ``NUMBA_CACHE_DIR`` or numba's
    per-user cache. Looks at file names only; True when pymatting is imported already or not
    installed (nothing to compile then)."""
    import importlib.util
    import os
    import sys

    if "pymatting" in sys.modules:
        return True
    spec = importlib.util.find_spec("pymatting")
    if spec is None or not spec.submodule_search_locations:
        return True
    for location in spec.submodule_search_locations:
        if any(Path(location).rglob("*.nbi")):
            return True
    for cache in (os.environ.get("NUMBA_CACHE_DIR"), Path.home() / ".cache" / "numba"):
        if cache and Path(cache).is_dir() and any(
                "pymatting" in str(index) for index in Path(cache).rglob("*.nbi")):
            return True
    return False


#: Printed before pymatting is first imported on a machine (numba compiles it then, silently).
PYMATTING_COMPILE_NOTICE = ("video-matte: compiling pymatting kernels once (about a minute; "
                            "cached for later runs) ...")


def run_video_matte(args, stdout, stderr) -> int:
    from ..matting.video import VideoMatteParams
    from ..pipeline.video_folder import ClipError, NoFramesError, video_matte_folder

    try:
        params = VideoMatteParams(band=args.band, motion_band=args.motion_band,
                                  smoothing=args.smoothing, window=args.window,
                                  method=args.method, stabilise=not args.independent).validate()
    except ValueError as error:
        return usage_error(stderr, str(error))
    progress = JobProgress(stderr, "video-matte")
    output_dir = Path(args.output_dir)

    def announce_compile() -> None:  # the clip is read and checked: the solve starts now
        if not _pymatting_kernels_cached():
            stderr.write(PYMATTING_COMPILE_NOTICE + "\n")
            stderr.flush()

    def describe(error: OSError) -> str:
        if isinstance(error, NoFramesError):  # like refine on an empty folder: exit 1
            return str(error)
        return f"cannot write {output_dir}: {error.strerror or error}"

    run, code = run_job(
        lambda stop: video_matte_folder(
            args.frames_dir, args.masks_dir, args.output_dir, params, invert=args.invert_masks,
            progress=lambda done, total, name: progress(done, total, "done", name),
            should_stop=stop, before_solve=announce_compile, **image_limit_kwargs(args)),
        progress, stderr, JobErrors(usage=(ClipError, ValueError), fatal=(OSError,),
                                    describe=describe))
    if code is not None:
        return code
    print_summary(stdout, run, args.json)
    return run_exit_code(run, stderr)
