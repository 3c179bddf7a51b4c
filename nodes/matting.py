"""Matting nodes: chroma keyer, trimap matting, video matting, and the folder loaders / RGBA
sequence saver the video workflow needs; Trimap from Mask is a deprecated alias of the
evaluation's Trimap By Erode / Dilate (:mod:`.evaluation`), kept so saved graphs load.

Thin adapters over :mod:`..matting` (and :mod:`..pipeline.video_folder` for folders). Alpha
sockets mean 1 = opaque subject; mask inputs offer ``invert`` for core's inverted MASK.
"""
from __future__ import annotations

import numpy as np

from ._common import (Progress, check_interrupt, each_in_batch, image_list, image_tensor, mask_list, mask_tensor,
                      match_batch)
from ._host import output_directory
from ._schema import (Output, choice, comfy_node, from_field, image, invert, mask, node_mappings, switch, text,
                      whole_number)

CATEGORY = "LD-Portrait/matting"
METHOD_NAMES = ("cf", "knn", "lkm", "lbdm", "rw")
METHOD_TOOLTIP = ("pymatting solver: cf = closed-form matting (best on portraits, default), knn, "
                  "lkm = large kernel, lbdm = learning-based, rw = random walk.")


@comfy_node
class LDPChromaKey:
    DISPLAY_NAME = "Chroma Key (LD-Portrait)"
    DESCRIPTION = (
        "Key a green- or blue-screen image (for example an SDXL portrait generated on a plain "
        "green screen): colour-difference alpha (Vlahos / IBK style) against a clean plate that "
        "follows uneven screen lighting, clip black / clip white, spill suppression on the "
        "foreground, optional edge softness. The key colour is picked from the image border "
        "unless given.")
    CATEGORY = CATEGORY
    FUNCTION = "key"
    OUTPUTS = (
        Output("IMAGE", "foreground", "Spill-suppressed foreground colour, padded where alpha is 0 (IMAGE "
                                      "[B,H,W,3])."),
        Output("MASK", "alpha", "Keyed alpha, 1 = opaque subject (MASK [B,H,W])."),
        Output("IMAGE", "preview", "The foreground over a grey checkerboard (IMAGE [B,H,W,3])."),
        Output("STRING", "stats", "JSON list, one object per image: key colour, settings, green excess "
                                  "before/after."),
    )

    @classmethod
    def inputs(cls):
        from ..matting.keying import KeyParams

        return [
            image("image", "Green- or blue-screen photographs (IMAGE [B,H,W,3])."),
            text("key_colour", (
                "Screen colour: auto (measured on the image border), green, blue, #RRGGBB, R,G,B in "
                "0..255 or R,G,B in 0..1."), default="auto"),
            from_field(KeyParams, "clip_black", step=0.01),
            from_field(KeyParams, "clip_white", step=0.01),
            from_field(KeyParams, "spill_strength", step=0.05),
            from_field(KeyParams, "edge_softness", step=0.1),
            switch("clean_plate", True, (
                "Estimate the screen colour at every pixel (uneven lighting). Off: one key colour for "
                "the whole image."), optional=True),
        ]

    def key(self, image, key_colour, clip_black, clip_white, spill_strength, edge_softness,
            clean_plate=True):
        import json

        from ..matting.keying import KeyParams, chroma_key, parse_key_colour

        params = KeyParams(key_colour=parse_key_colour(key_colour), clip_black=float(clip_black),
                           clip_white=float(clip_white), spill_strength=float(spill_strength),
                           edge_softness=float(edge_softness), plate=bool(clean_plate)).validate()
        fgs, alphas, previews, stats = [], [], [], []
        for frame in each_in_batch(image_list(image)):
            result = chroma_key(frame, params)
            fgs.append(result.foreground)
            alphas.append(result.alpha)
            previews.append(result.preview)
            stats.append(result.stats)
        return (image_tensor(fgs), mask_tensor(alphas), image_tensor(previews), json.dumps(stats))


@comfy_node
class LDPTrimapFromMask:
    """Deprecated: Trimap By Erode / Dilate with erode = dilate = band and unknown 0.5 makes the
    same trimap. Registered under its id, with its inputs in their order and its one output, so
    saved graphs still load and run; ``DEPRECATED`` hides it from the node search of both
    supported hosts (ComfyUI 0.3.64 and 0.8.0 report it as ``deprecated`` in /object_info)."""

    DEPRECATED = True
    DISPLAY_NAME = "Trimap from Mask (deprecated: use Trimap By Erode / Dilate) (LD-Portrait)"
    DESCRIPTION = (
        "Deprecated: use Trimap By Erode / Dilate (erode = dilate = band, unknown 0.5), which "
        "makes the same trimap. Makes a trimap from a mask or an alpha: 1 inside, 0 outside, "
        "0.5 in a band of the given half-width around the edge (where the matting solver works).")
    CATEGORY = CATEGORY
    FUNCTION = "trimap"
    OUTPUTS = (Output("MASK", "trimap", "Trimap: 0 background, 0.5 unknown, 1 foreground (MASK [B,H,W])."),)

    @classmethod
    def inputs(cls):
        return [mask("mask", "Person mask or alpha, 1 = subject; thresholded at 0.5."),
                whole_number("band", 10, 1, 512, "Half-width in px of the unknown band around the mask edge."),
                invert()]

    def trimap(self, mask, band, invert=False):
        from .evaluation import erode_dilate_trimaps

        return (mask_tensor(erode_dilate_trimaps(mask, int(band), int(band), invert, "0.5")),)


@comfy_node
class LDPTrimapMatting:
    DISPLAY_NAME = "Trimap Matting (LD-Portrait)"
    DESCRIPTION = (
        "Image + trimap -> alpha with a classical solver that needs no weights (pymatting "
        "closed-form by default), solving only the unknown band tile by tile, plus the "
        "foreground colour by fast multi-level estimation for clean composites.")
    CATEGORY = CATEGORY
    FUNCTION = "matte"
    OUTPUTS = (
        Output("MASK", "alpha", "Alpha, 1 = opaque subject (MASK [B,H,W])."),
        Output("IMAGE", "foreground", "Estimated foreground colour (IMAGE [B,H,W,3])."),
        Output("IMAGE", "rgba", "Foreground and alpha together (IMAGE [B,H,W,4])."),
    )

    @classmethod
    def inputs(cls):
        return [
            image("image", "The photographs (IMAGE [B,H,W,3])."),
            mask("trimap", (
                "Trimap: 0 background, 0.5 unknown, 1 foreground (values in (0.1, 0.9) count as "
                "unknown). A batch of 1 is reused for every image.")),
            choice("method", METHOD_NAMES, "cf", METHOD_TOOLTIP),
        ]

    def matte(self, image, trimap, method):
        from ..matting.trimap_solve import estimate_foreground, solve_trimap

        frames, trimaps = match_batch(image_list(image), mask_list(trimap, "trimap"),
                                      names=("image", "trimap"))
        alphas, fgs = [], []
        for frame, tri in each_in_batch(list(zip(frames, trimaps))):
            # Cancel is honoured between tiles / coarse-to-fine levels, not only between images.
            alpha = solve_trimap(frame, tri, method=method, progress=lambda done, total: check_interrupt())
            alphas.append(alpha)
            fgs.append(estimate_foreground(frame, alpha))
        rgba = [np.dstack([f, a]) for f, a in zip(fgs, alphas)]
        return (mask_tensor(alphas), image_tensor(fgs), image_tensor(rgba))


@comfy_node
class LDPVideoMatte:
    DISPLAY_NAME = "Video Matte (LD-Portrait)"
    DESCRIPTION = (
        "Video portrait matting over an IMAGE batch of frames with one person mask per frame "
        "(any segmentation node's MASK batch, or an alpha): the masks are stabilised over time "
        "(median + hysteresis), trimaps follow the motion, every frame is matted with a "
        "classical solver, alpha is smoothed over time where the picture is static, and the "
        "frames come out as RGBA.")
    CATEGORY = CATEGORY
    FUNCTION = "matte"
    OUTPUTS = (
        Output("IMAGE", "rgba", "Foreground colour + alpha per frame (IMAGE [B,H,W,4]); save it as an RGBA "
                                "PNG sequence."),
        Output("MASK", "alpha", "Alpha per frame, 1 = opaque person (MASK [B,H,W])."),
        Output("IMAGE", "foreground", "Estimated foreground colour per frame (IMAGE [B,H,W,3])."),
        Output("MASK", "trimaps", "The stabilised trimaps (0 / 0.5 / 1, MASK [B,H,W]), for inspection."),
    )

    @classmethod
    def inputs(cls):
        from ..matting.video import VideoMatteParams

        return [
            image("frames", "The clip, one frame per batch entry, in time order."),
            mask("masks", (
                "One person mask per frame (1 = person), from a segmentation node or an alpha; the "
                "batch size must equal the number of frames.")),
            from_field(VideoMatteParams, "band"),
            from_field(VideoMatteParams, "smoothing", step=0.05),
            choice("method", METHOD_NAMES, VideoMatteParams.method, METHOD_TOOLTIP),
            from_field(VideoMatteParams, "window", step=2, optional=True),
            from_field(VideoMatteParams, "motion_band", optional=True),
            invert(),
        ]

    def matte(self, frames, masks, band, smoothing, method, window=3, motion_band=0, invert=False):
        from ..matting.video import VideoMatteParams, matte_video

        params = VideoMatteParams(band=int(band), smoothing=float(smoothing), method=method,
                                  window=int(window), motion_band=int(motion_band)).validate()
        rgb = image_list(frames, "frames")
        soft = mask_list(masks, "masks", invert)
        progress = Progress(len(rgb))

        def on_frame(done, total):
            check_interrupt()
            progress.update()

        result = matte_video(rgb, soft, params, progress=on_frame)
        return (image_tensor(result.rgba), mask_tensor(result.alpha),
                image_tensor([x[..., :3] for x in result.rgba]), mask_tensor(result.trimaps))


def _folder(path: str):
    from .files import resolve_path

    folder = resolve_path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder (relative paths are looked up in ComfyUI's "
                         "input folder).")
    return folder


@comfy_node
class LDPLoadFrameFolder:
    DISPLAY_NAME = "Load Frame Folder (LD-Portrait)"
    DESCRIPTION = (
        "Load every PNG of a folder (sorted by name = time order) as one IMAGE batch of "
        "frames, plus their file names for loading the matching masks and naming the outputs. "
        "All frames must have one size.")
    CATEGORY = "LD-Portrait/io"
    FUNCTION = "load"
    OUTPUTS = (
        Output("IMAGE", "frames", "The frames (IMAGE [B,H,W,3])."),
        Output("STRING", "names", "File names, one per line, in frame order."),
        Output("INT", "count", "Number of frames."),
    )

    @classmethod
    def inputs(cls):
        return [
            text("folder", "Folder of frame PNGs; absolute, or relative to ComfyUI's input folder.",
                 default="clip/frames"),
            whole_number("max_frames", 0, 0, 100000, "Load at most this many frames (0 = all)."),
        ]

    @classmethod
    def IS_CHANGED(cls, folder, max_frames):
        return _folder_fingerprint(folder)

    def load(self, folder, max_frames):
        from ..dataset.imagefiles import list_pngs, read_rgba

        directory = _folder(folder)
        files = list_pngs(directory)[: max_frames or None]
        if not files:
            raise ValueError(f"{directory}: the folder contains no PNG files.")
        frames = []
        for path in files:
            check_interrupt()
            rgb, _ = read_rgba(path, require_alpha=False)
            if frames and rgb.shape != frames[0].shape:
                raise ValueError(f"{path.name} is {rgb.shape[1]}x{rgb.shape[0]} but "
                                 f"{files[0].name} is {frames[0].shape[1]}x{frames[0].shape[0]}: "
                                 "every frame must have one size.")
            frames.append(rgb)
        return (image_tensor(frames), "\n".join(p.name for p in files), len(files))


@comfy_node
class LDPLoadMaskFolder:
    DISPLAY_NAME = "Load Mask Folder (LD-Portrait)"
    DESCRIPTION = (
        "Load one mask PNG per frame from a folder, matched by file name to the frames' names "
        "(white = person). A frame without its mask is an error that names it.")
    CATEGORY = "LD-Portrait/io"
    FUNCTION = "load"
    OUTPUTS = (Output("MASK", "masks", "The masks in frame order, 1 = person (MASK [B,H,W])."),)

    @classmethod
    def inputs(cls):
        return [
            text("folder", (
                "Folder of mask PNGs with the frames' file names; absolute, or relative to ComfyUI's "
                "input folder."), default="clip/masks"),
            text("names", "The frames' file names, one per line (Load Frame Folder's names).",
                 force_input=True),
            invert("Masks are white = background."),
        ]

    @classmethod
    def IS_CHANGED(cls, folder, names=None, invert=False):
        return _folder_fingerprint(folder)

    def load(self, folder, names, invert=False):
        from ..dataset.imagefiles import read_gray

        directory = _folder(folder)
        wanted = [n for n in str(names).splitlines() if n.strip()]
        if not wanted:
            raise ValueError("names is empty: connect Load Frame Folder's names output.")
        missing = [n for n in wanted if not (directory / n).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} frame(s) have no mask in {directory} (e.g. "
                             f"{', '.join(missing[:5])}); masks must have the frames' file names.")
        masks = []
        for name in wanted:
            mask = read_gray(directory / name)
            if masks and mask.shape != masks[0].shape:
                raise ValueError(f"mask {name} is {mask.shape[1]}x{mask.shape[0]} but the first "
                                 f"is {masks[0].shape[1]}x{masks[0].shape[0]}.")
            masks.append(1.0 - mask if invert else mask)
        return (mask_tensor(masks),)


def _folder_fingerprint(folder):
    import hashlib

    try:
        from ..dataset.imagefiles import list_pngs

        digest = hashlib.sha256()
        for path in list_pngs(_folder(folder)):
            stat = path.stat()
            digest.update(f"{path.name}|{stat.st_mtime_ns}|{stat.st_size}\n".encode())
        return digest.hexdigest()
    except (OSError, ValueError):
        return float("nan")


@comfy_node
class LDPSaveRGBASequence:
    DISPLAY_NAME = "Save RGBA Sequence (LD-Portrait)"
    DESCRIPTION = (
        "Save an RGBA IMAGE batch as PNG files in <ComfyUI output>/<folder_name>/, one per "
        "frame, named after the frames (names input) or frame_00000.png. Writes are atomic; "
        "existing files of the same name are replaced.")
    CATEGORY = "LD-Portrait/io"
    FUNCTION = "save"
    OUTPUT_NODE = True
    OUTPUTS = (Output("STRING", "folder", "The folder the PNGs were written to."),)

    @classmethod
    def inputs(cls):
        return [
            image("rgba", "Frames with alpha (IMAGE [B,H,W,4], e.g. Video Matte's rgba)."),
            text("folder_name", (
                "Folder inside ComfyUI's output folder: one plain name (letters, digits, _ . - and "
                "inner spaces)."), default="video_matte"),
            text("names", "File names, one per line (Load Frame Folder's names); otherwise "
                          "frame_00000.png ...", optional=True, force_input=True),
        ]

    def save(self, rgba, folder_name, names=None, output_root=None):
        """``output_root`` (a keyword, not a socket: for tests and scripts) overrides the output
        folder; otherwise the host's, else ``LDP_OUTPUT_DIR`` (:func:`._host.output_directory`)."""
        from pathlib import Path

        from ..dataset import validate_dataset_name
        from ..dataset.imagefiles import write_png_atomic

        frames = image_list(rgba, "rgba", channels=4)
        folder = output_directory(output_root) / validate_dataset_name(folder_name)
        listed = [n.strip() for n in str(names or "").splitlines() if n.strip()]
        if listed and len(listed) != len(frames):
            raise ValueError(f"{len(listed)} name(s) for {len(frames)} frame(s): connect the names "
                             "of the same clip.")
        files = listed or [f"frame_{i:05d}.png" for i in range(len(frames))]
        for name in files:
            if Path(name).name != name or not name.lower().endswith(".png"):
                raise ValueError(f"{name!r} is not a plain PNG file name.")
        for frame, name in zip(frames, files):
            check_interrupt()
            write_png_atomic(folder / name, np.clip(frame, 0.0, 1.0))
        return {"ui": {"text": [str(folder)]}, "result": (str(folder),)}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    LDPChromaKey, LDPTrimapFromMask, LDPTrimapMatting, LDPVideoMatte, LDPLoadFrameFolder, LDPLoadMaskFolder,
    LDPSaveRGBASequence)

__all__ = list(NODE_CLASS_MAPPINGS) + ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
