"""Dataset nodes: save samples into a dataset root, composite portraits over backgrounds.

Thin adapters over :mod:`..dataset` (the writer with its atomicity, resume and several-writer
guarantees, and :mod:`..dataset.records`, the one record -> meta -> keep/reject path that
``ld-portrait refine`` uses too) and
:mod:`..base.composite` (compositing) and :mod:`..dataset.backgrounds` (picture folders). The
nodes convert tensors, find the output folder and build the UI result; heavy modules are
imported when a node runs so that loading the pack stays light. Alpha sockets mean 1 = opaque portrait; an
``invert`` switch accepts core's inverted MASK.

Where ``LDPSaveDataset`` writes
-------------------------------
The dataset root is ``<output folder>/<dataset_name>``. The output folder follows the pack's one
rule (:func:`._host.output_directory`), in order:

1. the ``output_root`` keyword of :meth:`LDPSaveDataset.save` (not a socket: for tests and
   scripts that call the node directly);
2. ComfyUI's output folder (``folder_paths.get_output_directory()``, looked up when the node
   runs) when the host is present;
3. the environment variable ``LDP_OUTPUT_DIR`` when running without the host.

Without any of them the node refuses to run rather than guess. ``dataset_name`` must be one
plain folder name (see :func:`..dataset.validate_dataset_name`); names that try to leave the
output folder (``../x``, absolute paths, separators, NUL bytes, very long names) and a root
that is a symlink pointing elsewhere are refused before anything is written.

The graph that made the samples
-------------------------------
Like core ``SaveImage`` the node takes ComfyUI's hidden ``PROMPT`` (the API graph, here the
argument ``api_graph``: ``prompt`` is the positive-prompt socket) and ``EXTRA_PNGINFO`` (the
editor graph as ``workflow``, and whatever else the client sent) inputs and writes them into
each ``fg`` PNG as text chunks ``prompt``, ``workflow``, ... (``alpha`` PNGs stay plain), so
dropping an ``fg`` PNG onto the canvas reopens the graph. The API graph is also stored once
per dataset under ``provenance/<sha256>.json`` and referenced from each sample's meta
(:mod:`..dataset.provenance`). The host's ``--disable-metadata`` turns both off.
"""
from __future__ import annotations

from pathlib import Path

from ._common import Progress, check_interrupt, each_in_batch, image_list, image_tensor, mask_list, match_batch
from ._host import OUTPUT_DIR_ENV, output_directory
from ._host import disables_metadata as host_disables_metadata
from ._schema import (Output, alpha, choice, comfy_node, image, invert, mask, node_mappings, switch, text,
                      whole_number)

CATEGORY = "LD-Portrait/dataset"
DEFAULT_DATASET_NAME = "ld_portrait_20k"
MAX_INDEX = 2 ** 53  # the frontend stores widget values as JS numbers


# --------------------------------------------------------------------------------------------
# Save node
# --------------------------------------------------------------------------------------------

@comfy_node
class LDPSaveDataset:
    DISPLAY_NAME = "Save Matting Dataset (LD-Portrait)"
    DESCRIPTION = (
        "Save portraits into a matting dataset under ComfyUI's output folder: "
        "<output>/<dataset_name>/fg/<id>.png (padded foreground), alpha/<id>.png (refined "
        "alpha), raw_alpha/ and error_maps/ (optional), meta/<id>.json (prompt, negative, seed, "
        "attributes, models, refinement statistics, verdict, the graph) and manifest.jsonl. The fg "
        "PNGs carry the workflow like core Save Image's (drop one onto the canvas to reopen "
        "it). Ids come from "
        "sample_index: index_id(i) = '000123'; a batch of B images gets ids sample_index .. "
        "sample_index + B - 1. Writes are atomic, ids already complete are skipped (re-running "
        "a range resumes it), several ComfyUI instances may write one dataset at once, and "
        "rejected samples go to rejected/ (with images, or as a meta record only).")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    OUTPUTS = (Output("STRING", "summary", (
        "What happened, one line per image: id, accepted / rejected (with or without images) or "
        "skipped (already complete), and the dataset folder.")),)
    # What core SaveImage takes: the API graph and the editor graph (fg PNG chunks).
    HIDDEN = {"api_graph": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}

    @classmethod
    def inputs(cls):
        def text_socket(name, tooltip):
            return text(name, tooltip, optional=True, force_input=True)

        return [
            image("foreground", (
                "Padded foreground colour F (IMAGE [B,H,W,3], e.g. from Pad Foreground Colour); "
                "stored as 8-bit RGB in fg/.")),
            mask("alpha", "Refined alpha to store, 1 = opaque portrait (MASK [B,H,W]), same size as "
                          "the foreground."),
            text("dataset_name", (
                "Folder name inside ComfyUI's output folder that holds the dataset. One plain name: "
                "letters, digits, _ . - and inner spaces; paths such as '../x' or '/abs' are "
                "refused."), default=DEFAULT_DATASET_NAME),
            whole_number("sample_index", 0, 0, MAX_INDEX, (
                "Index of the first image; its id is the index with 6 digits ('000123'). A batch of "
                "B images gets ids index .. index+B-1. Wire the Prompt Template's index output here "
                "so ids follow the prompts.")),
            switch("keep", True, (
                "From Matte Quality Gate's keep. With the gate's verdict wired too, each image "
                "follows its own verdict; keep = false with no rejecting verdict rejects the whole "
                "batch.")),
            switch("keep_rejected", False, (
                "Rejected samples: on = store their images under rejected/ for review; off = record "
                "only their meta (verdict, prompt) under rejected/meta/, so statistics see them and "
                "a re-run does not redo them.")),
            choice("alpha_bits", ("8", "16"), "8", "Bit depth of the stored alpha and raw alpha PNGs."),
            mask("raw_alpha", (
                "Optional decoder alpha before refinement (1 = opaque), stored in raw_alpha/ for "
                "audit."), optional=True),
            image("error_map", (
                "Optional error-map picture (Connectivity Refine's error_map), stored in "
                "error_maps/."), optional=True),
            text_socket("prompt", "Positive prompt (Prompt Template's prompt), stored in meta."),
            text_socket("negative", "Negative prompt (Prompt Template's negative), stored in meta."),
            text_socket("attributes", (
                "JSON object of the chosen attributes (Prompt Template's attributes); stored parsed "
                "in meta and the manifest. Not JSON -> an error.")),
            whole_number("seed", None, 0, 0xFFFFFFFFFFFFFFFF,
                         "Sampler seed of this sample (Prompt Template's seed).", optional=True,
                         force_input=True),
            text_socket("verdict", (
                "Matte Quality Gate's verdict JSON (a list, one per image); stored per image, and it "
                "decides accept/reject per image.")),
            text_socket("stats", (
                "Connectivity Refine's stats JSON (a list, one per image); stored per image as "
                "'refinement'.")),
            text("models", (
                "Which checkpoint and Layer Diffusion files made the samples (free text, or JSON), "
                "stored in meta."), default="", optional=True, multiline=True),
            invert(),
        ]

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        # Always run: the work is a cheap "already complete?" check per id, and a run after
        # files were deleted or moved must write them again.
        return float("nan")

    def save(self, foreground, alpha, dataset_name=DEFAULT_DATASET_NAME, sample_index=0,
             keep=True, keep_rejected=False, alpha_bits="8", raw_alpha=None, error_map=None,
             prompt=None, negative=None, attributes=None, seed=None, verdict=None, stats=None,
             models="", invert=False, output_root=None, api_graph=None, extra_pnginfo=None):
        from ..dataset.pngtext import comfy_text_entries
        from ..dataset.provenance import GRAPH_KIND, api_graph_as_queued, provenance_document
        from ..dataset.version import tool_version
        from ..base.validation import check_same_size
        from ..dataset import (BatchInput, DatasetError, DatasetWriter, SavePolicy,
                               batch_records, common_meta, dataset_root_in, decide_keep,
                               index_id, models_value, parse_json_input, per_image, save_batch,
                               validate_dataset_name)

        # Everything that can be checked is checked before the first file is written.
        name = validate_dataset_name(dataset_name)
        # SavePolicy checks the bit depth (the combo sends "8" / "16"; the API may send more).
        policy = SavePolicy(keep_rejected=bool(keep_rejected),
                            alpha_bits=int(alpha_bits) if str(alpha_bits).strip().isdigit() else alpha_bits)
        if isinstance(sample_index, bool) or int(sample_index) < 0:
            raise ValueError(f"sample_index must be 0 or more, got {sample_index!r}.")
        parsed_attributes = parse_json_input(attributes, "attributes", kinds=(dict,))
        parsed_verdict = parse_json_input(verdict, "verdict")
        parsed_stats = parse_json_input(stats, "stats")
        foregrounds, alphas, raws, maps = match_batch(
            image_list(foreground, "foreground"), mask_list(alpha, "alpha", invert=invert),
            None if raw_alpha is None else mask_list(raw_alpha, "raw_alpha", invert=invert),
            None if error_map is None else image_list(error_map, "error_map"),
            names=("foreground", "alpha", "raw_alpha", "error_map"))
        count = len(alphas)
        for b in range(count):
            check_same_size(foregrounds[b], alphas[b], "foreground", "alpha")
            if raws is not None:
                check_same_size(raws[b], alphas[b], "raw_alpha", "alpha")
        verdicts = per_image(parsed_verdict, count, "verdict")
        refinements = per_image(parsed_stats, count, "stats")
        ids = [index_id(int(sample_index) + b) for b in range(count)]
        png_text, left_out, provenance = [], [], None
        if not host_disables_metadata():
            png_text, left_out = comfy_text_entries(api_graph, extra_pnginfo)
            if isinstance(api_graph, dict) and api_graph:
                provenance = provenance_document(GRAPH_KIND, api_graph_as_queued(api_graph))
        records = batch_records(BatchInput(
            ids, foregrounds, alphas, decide_keep(bool(keep), verdicts), raw_alphas=raws,
            error_maps=maps, verdicts=verdicts, refinements=refinements,
            first_index=int(sample_index),
            common=common_meta(prompt=prompt, negative=negative, seed=seed,
                               attributes=parsed_attributes, models=models_value(models),
                               tool={"name": "ld-portrait", "version": tool_version(),
                                     "node": "LDPSaveDataset"}),
            provenance=provenance, png_text=png_text))

        output = output_directory(output_root)
        root = dataset_root_in(output, name)
        writer = DatasetWriter(root)  # DatasetError (clear message) when not writable
        if writer.root != root.resolve() or writer.root.parent != output.resolve():
            raise DatasetError(f"dataset folder {root} resolves outside {output}; refusing.")

        progress = Progress(count)
        images = []

        def after_each(outcome):
            images.extend(self._previews(writer, name, outcome.sample_id))
            progress.update()

        outcomes = save_batch(writer, records, policy, before_each=check_interrupt, after_each=after_each)
        written = sum(outcome.written for outcome in outcomes)
        summary = (f"dataset {name} ({writer.root}): {written} written, {count - written} "
                   "skipped\n" + "\n".join(outcome.line for outcome in outcomes))
        if left_out:
            summary += ("\nnot written into the fg PNGs (not valid PNG text keywords): "
                        + ", ".join(map(repr, left_out)))
        return {"ui": {"images": images, "text": [summary]}, "result": (summary,)}

    @staticmethod
    def _previews(writer, name: str, sample_id: str) -> list[dict]:
        """UI image entries (paths relative to the output folder) for a sample's stored images."""
        status = writer.status(sample_id)
        if status is None:
            return []
        prefix = "rejected/" if status == "rejected" else ""
        entries = []
        for kind in ("fg", "alpha"):
            if (writer.root / f"{prefix}{kind}" / f"{sample_id}.png").is_file():
                entries.append({"filename": f"{sample_id}.png",
                                "subfolder": f"{name}/{prefix}{kind}", "type": "output"})
        return entries


# --------------------------------------------------------------------------------------------
# Composite node
# --------------------------------------------------------------------------------------------

def _resolve_folder(text: str) -> Path:
    from .files import resolve_path

    return resolve_path(text)


@comfy_node
class LDPCompositeBackground:
    DISPLAY_NAME = "Composite over Background (LD-Portrait)"
    DESCRIPTION = (
        "Composite portraits over backgrounds: composite = foreground * alpha + background * "
        "(1 - alpha). Backgrounds come from a folder of pictures (each is scaled to cover the "
        "portrait and centre-cropped; image i of the batch uses file number index + i of the "
        "folder in an order shuffled by seed) or, with the folder empty, are generated: "
        "gradient, checker, noise, bokeh, solid, studio or random, deterministic from seed and "
        "index. For training composites and previews; unreadable pictures are skipped and "
        "listed in the report.")
    CATEGORY = CATEGORY
    FUNCTION = "composite"
    OUTPUTS = (
        Output("IMAGE", "composite", "Foreground over the background (IMAGE [B,H,W,3])."),
        Output("IMAGE", "background", "The background used for each image, fitted to its size (IMAGE "
                                      "[B,H,W,3])."),
        Output("STRING", "report", "One line per image: which file or procedural kind and seed it used, "
                                   "plus any unreadable files that were skipped."),
    )

    @classmethod
    def inputs(cls):
        from ..base.composite import KINDS, RANDOM_KIND

        return [
            image("foreground", (
                "Foreground colour (IMAGE [B,H,W,3]); use the padded F so that soft edges show no "
                "dark fringe.")),
            alpha(),
            text("background_folder", (
                "Folder of background pictures (PNG, JPEG, WebP, BMP, TIFF); relative paths are "
                "looked up in ComfyUI's input folder. Empty = procedural backgrounds."), default=""),
            choice("kind", (RANDOM_KIND, *KINDS), RANDOM_KIND, (
                "Procedural background when the folder is empty: gradient, checker, noise (fractal "
                "texture), bokeh (soft light discs), solid, studio (lit backdrop with vignette), or "
                "random (a kind per image from the seed).")),
            whole_number("seed", 0, 0, 0xFFFFFFFFFFFFFFFF, (
                "Base seed: shuffles the folder order and drives the procedural backgrounds.")),
            whole_number("index", 0, 0, MAX_INDEX, (
                "Picks the background: image i of the batch uses number index + i (wire the sample "
                "index so each sample gets another background).")),
            invert(),
        ]

    def composite(self, foreground, alpha, background_folder="", kind="random", seed=0, index=0,
                  invert=False):
        from ..dataset.backgrounds import BackgroundFolder, list_background_files
        from ..base.composite import (BACKGROUND_SUFFIXES, RANDOM_KIND,
                                      background_seed, composite_over,
                                      pick_kind, procedural_background)

        foregrounds, alphas = match_batch(image_list(foreground, "foreground"),
                                          mask_list(alpha, "alpha", invert=invert),
                                          names=("foreground", "alpha"))
        seed, index = int(seed), int(index)
        folder_text = str(background_folder or "").strip()
        pictures = None
        if folder_text:
            folder = _resolve_folder(folder_text)
            if not folder.is_dir():
                raise ValueError(f"background_folder {folder} is not a folder (relative paths are "
                                 "looked up in ComfyUI's input folder); clear it for procedural "
                                 "backgrounds.")
            files = list_background_files(folder)
            if not files:
                raise ValueError(f"background_folder {folder} has no pictures "
                                 f"({', '.join(BACKGROUND_SUFFIXES)}); add some or clear the "
                                 "field for procedural backgrounds.")
            pictures = BackgroundFolder(files, seed)

        composites, backgrounds, lines = [], [], []
        for b, (fg, matte) in each_in_batch(list(enumerate(zip(foregrounds, alphas)))):
            height, width = matte.shape
            position = index + b
            if pictures is not None:
                picture, picture_name = pictures.pick(position, height, width)
                lines.append(f"{b}: {picture_name}")
            else:
                image_seed = background_seed(seed % (1 << 63), position)
                drawn = pick_kind(image_seed) if kind == RANDOM_KIND else kind
                picture = procedural_background(drawn, height, width, image_seed)
                lines.append(f"{b}: procedural {drawn} seed {image_seed}")
            backgrounds.append(picture)
            composites.append(composite_over(fg, matte, picture))
        if pictures is not None and pictures.skipped:
            lines.append(f"skipped {len(pictures.skipped)} unreadable file(s):")
            lines.extend(f"  {reason}" for reason in pictures.skipped.values())
        return (image_tensor(composites), image_tensor(backgrounds), "\n".join(lines))


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(LDPSaveDataset, LDPCompositeBackground)

__all__ = ["LDPSaveDataset", "LDPCompositeBackground", "output_directory",
           "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "OUTPUT_DIR_ENV"]
