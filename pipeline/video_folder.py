"""Folder job for ``ld-portrait video-matte``: frame PNGs + mask PNGs -> RGBA PNG frames.

``FRAMES_DIR/<name>.png`` are the frames (sorted by name = time order), ``MASKS_DIR/<name>.png``
the person masks with the same names (8-bit, white = person; a soft mask or a previous alpha
works too). Every frame needs its mask; masks without a frame are an error too (a mismatched
clip is almost always the wrong folder). The RGBA results go to ``OUT_DIR/<name>.png``,
written atomically; ``OUT_DIR`` may not be either input folder.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset.imagefiles import ImageFileError, list_pngs, read_gray, read_rgba, write_png_atomic
from ..matting.video import VideoMatteParams, matte_video

__all__ = ["ClipError", "NoFramesError", "VideoRunSummary", "pair_clip", "load_clip",
           "video_matte_folder"]


class ClipError(ValueError):
    """The frames and masks do not form a clip (the message says what is wrong)."""


class NoFramesError(FileNotFoundError):
    """The frames folder holds no PNG file (nothing was created), as ``refine``'s
    ``NoInputImagesError``."""


@dataclasses.dataclass
class VideoRunSummary:
    """What :func:`video_matte_folder` did."""

    frames_dir: str
    masks_dir: str
    output_dir: str
    frames: int = 0
    written: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        rate = self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0
        lines = [f"{self.frames} frame(s) from {self.frames_dir} with masks from {self.masks_dir}",
                 f"  wrote {self.written} RGBA PNG(s) to {self.output_dir} in "
                 f"{self.elapsed_s:.1f} s ({rate:.2f} frames/s)"]
        if self.interrupted:
            lines.append("  interrupted: nothing after the last written frame was saved")
        return "\n".join(lines)


def _names(paths) -> list[str]:
    return [p.name for p in paths]


def pair_clip(frames_dir, masks_dir) -> list[tuple[Path, Path]]:
    """(frame, mask) paths in time order, matched by file name.

    Raises
    ------
    ClipError
        A folder is missing, frames without masks, or masks without frames.
    NoFramesError
        The frames folder holds no PNG file.
    """
    frames_dir, masks_dir = Path(frames_dir).expanduser(), Path(masks_dir).expanduser()
    for label, folder in (("frames", frames_dir), ("masks", masks_dir)):
        if not folder.is_dir():
            raise ClipError(f"{label} folder {folder} does not exist or is not a folder.")
    frames, masks = list_pngs(frames_dir), list_pngs(masks_dir)
    if not frames:
        raise NoFramesError(f"frames folder {frames_dir} holds no PNG file (*.png); nothing "
                            "was written.")
    mask_by_name = {p.name: p for p in masks}
    missing = [name for name in _names(frames) if name not in mask_by_name]
    extra = sorted(set(mask_by_name) - set(_names(frames)))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} frame(s) have no mask in {masks_dir} (e.g. "
                         f"{', '.join(missing[:5])})")
        if extra:
            parts.append(f"{len(extra)} mask(s) have no frame in {frames_dir} (e.g. "
                         f"{', '.join(extra[:5])})")
        raise ClipError("; ".join(parts) + ". Masks must have exactly the frames' file names.")
    return [(frame, mask_by_name[frame.name]) for frame in frames]


def load_clip(pairs, *, invert: bool = False, max_pixels: int | None = None,
              max_bytes: int | None = None) -> tuple[list, list, list[str]]:
    """Read frames (RGB; an alpha channel is ignored) and masks (gray) of :func:`pair_clip`,
    each checked against ``max_pixels`` / ``max_bytes`` before decoding (None: the
    environment variable or the default, see ``dataset.imagefiles.check_image_file``).

    Returns
    -------
    frames : list of float32 [H, W, 3], masks : list of float32 [H, W], names : list of str

    Raises
    ------
    ClipError
        An unreadable file, or a frame or mask of another size than the first frame.
    """
    frames, masks, names = [], [], []
    shape = None
    for frame_path, mask_path in pairs:
        try:
            rgb, _ = read_rgba(frame_path, require_alpha=False, max_pixels=max_pixels,
                               max_bytes=max_bytes)
            mask = read_gray(mask_path, max_pixels=max_pixels, max_bytes=max_bytes)
        except ImageFileError as error:
            raise ClipError(str(error)) from None
        if shape is None:
            shape = rgb.shape[:2]
        for label, path, size in (("frame", frame_path, rgb.shape[:2]),
                                  ("mask", mask_path, mask.shape)):
            if size != shape:
                raise ClipError(f"{label} {path} is {size[1]}x{size[0]} but the first frame is "
                                f"{shape[1]}x{shape[0]}: every frame and mask must have one size.")
        frames.append(rgb)
        masks.append(1.0 - mask if invert else mask)
        names.append(frame_path.name)
    return frames, masks, names


def video_matte_folder(frames_dir, masks_dir, output_dir, params: VideoMatteParams | None = None,
                       *, invert: bool = False,
                       progress: Callable[[int, int, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       max_pixels: int | None = None,
                       max_bytes: int | None = None,
                       before_solve: Callable[[], None] | None = None) -> VideoRunSummary:
    """Matte a clip stored as PNG folders (see the module docstring).

    ``progress(done, total, name)`` is called after each frame is matted and again after each
    is written. ``should_stop`` is polled between frames. ``max_pixels`` / ``max_bytes``: the
    limits every frame and mask is checked against before decoding (see :func:`load_clip`).
    ``before_solve()`` is called once the clip is read and checked, before the matting starts
    (the CLI announces pymatting's one-time compile there).

    Raises
    ------
    NoFramesError
        The frames folder holds no PNG file (nothing is created).
    ClipError, ValueError
        A mismatched or unreadable clip, bad parameters, or an output folder that is an input.
    OSError
        The output folder cannot be written.
    """
    started = time.monotonic()
    params = (params or VideoMatteParams()).validate()
    output_dir = Path(output_dir).expanduser()
    pairs = pair_clip(frames_dir, masks_dir)
    for label, folder in (("frames", frames_dir), ("masks", masks_dir)):
        if output_dir.resolve() == Path(folder).expanduser().resolve():
            raise ClipError(f"OUT_DIR is the {label} folder; the results would overwrite the "
                            "inputs. Choose another output folder.")
    frames, masks, names = load_clip(pairs, invert=invert, max_pixels=max_pixels,
                                     max_bytes=max_bytes)
    summary = VideoRunSummary(str(frames_dir), str(masks_dir), str(output_dir), frames=len(frames))
    if before_solve is not None:
        before_solve()
    try:
        result = matte_video(frames, masks, params, should_stop=should_stop,
                             progress=None if progress is None else
                             (lambda done, total: progress(done, 2 * total, names[done - 1])))
    except InterruptedError:
        summary.interrupted = True
        summary.elapsed_s = time.monotonic() - started
        return summary
    output_dir.mkdir(parents=True, exist_ok=True)
    for index, (name, rgba) in enumerate(zip(names, result.rgba)):
        write_png_atomic(output_dir / name, np.clip(rgba, 0.0, 1.0))
        summary.written += 1
        if progress is not None:
            progress(len(names) + index + 1, 2 * len(names), name)
    summary.elapsed_s = time.monotonic() - started
    return summary
