"""Regenerate the shipped workflows: ``python tools/workflows_src/build_workflows.py``.

Writes workflows/<name>.json (UI) and workflows/api/<name>.json (API) from the descriptions
below and prints any problem tests/workflows/test_workflows.py would report. Re-run it after changing a
node's inputs or a default that the UI files store.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph import (Graph, arrange, T, REPO, preview, prompt_and_sample, quality_gate,  # noqa: E402
                   refine_and_pad, save_dataset, transparent_decode)

# The template browsers of ComfyUI's frontends (1.27, 1.35) show a custom node's example workflow under its
# file name: the title is the name, the description the name with '-' and '_' read as spaces, and the list
# keeps the server's order (a directory listing) unless sorted A-Z by name. Nothing else is read (no index,
# no field inside the workflow), so the UI file is named as a person would title it, numbered for the
# order; the API twin keeps the short name that the CLI and the docs use.
TITLES = {
    "ld_portrait_generate_preview": "LD-Portrait 1. Preview one transparent portrait (SDXL)",
    "ld_portrait_20k_generate": "LD-Portrait 2. Generate the 20K matting dataset (SDXL)",
    "ld_portrait_sd15_generate": "LD-Portrait 3. Generate a matting dataset with SD1.5",
    "ld_portrait_flux_generate": "LD-Portrait 4. Generate a matting dataset with Flux",
    "ld_portrait_refine_folder": "LD-Portrait 5. Refine a folder of RGBA portraits",
    "ld_portrait_greenscreen_key": "LD-Portrait 6. Green-screen portraits, chroma keyed",
    "ld_portrait_video_matte": "LD-Portrait 7. Video portrait matting",
}

CUSTOM_TEMPLATE = (
    "# Used only when preset is 'custom' (a shipped preset ignores this text).\n"
    "# {a|b} choice, {2::a|b} weight, {slot: a|b} recorded in attributes, __list__ wildcard file,\n"
    "# ~ empty option, # comment; the line [negative] starts the negative prompt.\n"
    "a portrait photo of a {age: young|middle-aged|senior} {gender: woman|man} with\n"
    "{hair_length: short|shoulder-length|long} {hair_color: black|brown|blonde|red|grey}\n"
    "{hair_style: curly|wavy|straight} hair, {2::~|wearing glasses}, single person, centered,\n"
    "whole head in frame, high quality, photorealistic, highly detailed hair strands\n"
    "[negative]\n"
    "two people, cropped head, blurry, lowres, text, watermark\n")

# Model file names, folders and URLs: the one table in layerdiffusion/model_files.py.
from comfyui_ld_portrait.layerdiffusion import model_files as MF  # noqa: E402

ATTN, DECODER = MF.MODEL_FILES["attn"], MF.MODEL_FILES["decoder"]
CKPT_NAME, CKPT_FOLDER, CKPT_URL, _ = MF.BASE_MODELS["sdxl_checkpoint"]

MODELS_JSON = json.dumps({"checkpoint": CKPT_NAME,
                          "layer_diffusion_patch": ATTN.file_name,
                          "transparent_decoder": DECODER.file_name}, indent=1)

MODEL_NOTE = f"""Model files: put them here, then press R in the editor to refresh the lists.

- models/{CKPT_FOLDER}/{CKPT_NAME}
  Stable Diffusion XL base 1.0 (stabilityai/stable-diffusion-xl-base-1.0). Other SDXL checkpoints work too.
- models/{ATTN.folder}/{ATTN.file_name}
  Layer Diffusion SDXL patch, attention injection (LayerDiffusion/layerdiffusion-v1).
- models/{DECODER.folder}/{DECODER.file_name}
  Layer Diffusion transparent decoder (same release).

`ld-portrait models download` fetches the two Layer Diffusion files into models/layer_model. That folder name is the one other Layer Diffusion node packs use, so files you already downloaded for them are found.

If you change a file, also update the 'models' text of Save Matting Dataset: it is recorded with every sample."""


def generation(preview_only=False):
    g = Graph()
    if preview_only:
        overview = g.note(None, [420, 520], title="Read me: LD-Portrait single-image preview", text="""Make one transparent portrait and see what the LD-Portrait pipeline does to it. Nothing is saved to a dataset.

Flow: Load Checkpoint (SDXL) -> Apply Layer Diffusion -> Prompt Template -> CLIP Text Encode (+/-) -> KSampler -> VAE Decode -> Transparent Decode (foreground + alpha) -> Connectivity Refine -> Pad Foreground (with the refined alpha) -> previews.

Previews:
- 'raw decode': the decoder's result on a checkerboard, before any repair.
- 'error map': the portrait with every pixel Connectivity Refine corrected in red.
- 'refined composite': padded foreground + refined alpha over a background.

Change the prompt by switching the template's preset to 'custom' and editing its text, or keep 'ld_portrait' and step the index. To make a dataset use the workflow \"LD-Portrait 2. Generate the 20K matting dataset (SDXL)\" instead.""")
    else:
        overview = g.note(None, [420, 700], title="Read me: LD-Portrait-20K generation", text="""One portrait matte per run, saved into a matting dataset (the LD-Portrait-20K pipeline).

Flow: Load Checkpoint (SDXL) -> Apply Layer Diffusion -> Prompt Template -> CLIP Text Encode (+/-) -> KSampler -> VAE Decode -> Transparent Decode (foreground F + alpha) -> Connectivity Refine -> Pad Foreground (with the refined alpha) -> Quality Gate -> Save Matting Dataset.

In the editor: the Prompt Template's index is set to 'increment', so every run makes the next prompt. Set the batch count beside Queue (for example 100) and press Queue. Samples go to ComfyUI/output/ld_portrait_20k/: fg/, alpha/, raw_alpha/, error_maps/, meta/ and manifest.jsonl; samples the gate refuses are recorded under rejected/. Ids follow the index (index 123 -> 000123), and ids already complete are skipped, so queuing a range again resumes it.

Headless, on one or many servers, with retries and resume:
ld-portrait queue workflows/api/ld_portrait_20k_generate.json --dataset ComfyUI/output/ld_portrait_20k --range 0:20051 --server 127.0.0.1:8188

Keep the template's seed fixed for a whole dataset: the seed and the index decide the prompt and the sampler seed of every sample, the same on every machine.""")
    models_note = g.note(None, [420, 430], title="Models: where to put which file", text=MODEL_NOTE)
    ckpt = g.node("CheckpointLoaderSimple", None, {"ckpt_name": CKPT_NAME},
                  title="Load Checkpoint (SDXL base 1.0)", size=[420, 110],
                  models=[{"name": CKPT_NAME, "directory": CKPT_FOLDER, "url": CKPT_URL}])
    patch = g.node("LDPLayerDiffusionPatch", None,
                   {"patch_file": ATTN.file_name, "strength": 1.0}, size=[420, 90],
                   models=[{"name": ATTN.file_name, "directory": ATTN.folder, "url": ATTN.url()}])
    decoder = g.node("LDPTransparentDecoderLoader", None,
                     {"decoder_file": DECODER.file_name}, size=[420, 70],
                     models=[{"name": DECODER.file_name, "directory": DECODER.folder, "url": DECODER.url()}])

    prompt_note = g.note(None, [460, 300], title="Prompt", text="""Prompt Template makes one prompt per index.

- preset ld_portrait: billions of distinct prompts varying age, ethnicity, gender, hair style, length and colour, clothing, accessories, expression, pose, framing and lighting; the chosen values come out as 'attributes' and are stored with the sample.
- mode enumerate walks every combination once, without repeats.
- index (increment): the sample number, one per run.
- seed (fixed): the base seed of the whole run.

Switch preset to 'custom' to use the text in the node. Your own wildcard lists go in ld_portrait_wildcards/ in the ComfyUI user or input folder and replace shipped lists of the same name.""")
    template = g.node("LDPPromptTemplate", None,
                      {"preset": "ld_portrait", "template": CUSTOM_TEMPLATE, "index": 0, "seed": 0,
                       "mode": "enumerate"}, controls={"index": "increment", "seed": "fixed"},
                      size=[460, 500])

    sample_note = g.note(None, [360, 300], title="Encode and sample", text="""SDXL at 1024 x 1024 with the Layer Diffusion patched model: the latent now also carries transparency.

- Text comes from the template's prompt and negative outputs.
- KSampler: dpmpp_2m_sde / karras, 25 steps, cfg 7. Its seed is wired from the template (a different seed per index, the same on every machine): do not unplug it.
- Keep batch_size 1: the dataset id follows the index, one sample per run.""")
    g.link(ckpt, 0, patch, "model")
    sampled = prompt_and_sample(g, template, model=(patch, 0), clip=(ckpt, 1), vae=(ckpt, 2))
    sampler, vae = sampled["sampler"], sampled["vae_decode"]

    decode_note = g.note(None, [380, 270], title="Transparent decode", text="""VAE Decode gives the colour; Transparent Decode runs the Layer Diffusion decoder on the same latent and that colour and returns the foreground F and the alpha (1 = opaque portrait).

passes 8 = four rotations x flip merged by the median, as upstream (best); 4, 2 or 1 are faster. Lower sub_batch if the GPU runs out of memory.

'raw decode' previews the result on a checkerboard, before any repair.""")
    decode = transparent_decode(g, sampled, decoder)
    raw_preview = preview(g, (decode, 3), "Preview: raw decode (checkerboard)", size=(380, 400))

    refine_note = g.note(None, [400, 330], title="Refine and pad", text="""Refine Alpha repairs the alpha with the portrait connectivity prior: semi-transparent speckle and blotches inside the body and pinholes (eye highlights) become opaque, faint floating debris is removed and the fade where the body leaves the frame is fixed, while hair and soft edges connected to the background are kept. strength: standard suits Layer Diffusion portraits, gentle keeps more semi-transparency, strong repairs more; every parameter is in Connectivity Refine Alpha, Advanced. The error map shows the corrected pixels in red.

Pad Foreground then fills F where the refined alpha is 0 with the colour of the nearby portrait (Layer Diffusion's padding), so composites show no dark fringe; filled pinholes keep their decoded colour.""")
    refine, pad = refine_and_pad(g, image=(decode, 0), alpha=(decode, 1))

    if not preview_only:
        gate_note = g.note(None, [400, 300], title="Quality gate", text="""Quality Gate judges each matte: it rejects empty mattes, several people, heads cut off at the top or sides, mattes that needed too many corrections, nearly binary alpha (a failed transparent decode), translucent objects and tiny or off-centre subjects. It reads the refined alpha, the decoder's raw alpha and the changed pixels. strictness: lenient, standard or strict; every threshold is in Matte Quality Gate, Advanced.

'keep' and 'verdict' go to the save node, which stores accepted samples and records rejected ones with their reasons (dataset statistics: ld-portrait dataset stats).""")
        gate = quality_gate(g, (refine, 0), raw_alpha=(decode, 1), refine=refine)
        save_note = g.note(None, [440, 300], title="Save", text="""Save Matting Dataset writes ComfyUI/output/<dataset_name>/:
fg/<id>.png (padded F), alpha/<id>.png (refined alpha), raw_alpha/ and error_maps/ (for audit), meta/<id>.json (prompt, negative, seed, attributes, models, refinement statistics, verdict) and manifest.jsonl.

Writes are atomic, complete ids are skipped, several ComfyUI instances may fill one dataset at once. keep_rejected on also stores the images of rejected samples under rejected/.

Check a dataset with: ld-portrait dataset verify | stats | sheet""")
        save = save_dataset(g, "ld_portrait_20k", MODELS_JSON, {
            "foreground": (pad, 0), "alpha": (refine, 0), "sample_index": (template, 4),
            "raw_alpha": (decode, 1)}, gate, template=template, refine=refine)

    composite = g.node("LDPCompositeBackground", None, {"kind": "random"}, size=[420, 220])
    g.link(pad, 0, composite, "foreground")
    g.link(refine, 0, composite, "alpha")
    g.link(template, 4, composite, "index")
    comp_preview = preview(g, (composite, 0), "Preview: refined composite")
    err_preview = preview(g, (refine, 2), "Preview: error map (corrections in red)")

    models = ("1. Models", [[models_note, ckpt, patch, decoder]])
    prompt = ("2. Prompt", [[prompt_note, template]])
    encode = ("3. Encode and sample", [[sample_note, sampled["pos_enc"], sampled["neg_enc"], sampled["latent"]],
                                       [sampler, vae]])
    decoding = ("4. Transparent decode", [[decode_note, decode], [raw_preview]])
    refining = ("5. Refine and pad", [[refine_note, refine, pad]])
    if preview_only:
        previews = ("6. Previews", [[composite, comp_preview], [err_preview]])
        arrange(g, [(None, [[overview]]), models, prompt, encode, decoding, refining, previews])
    else:
        arrange(g, [(None, [[overview]]), models, prompt, encode, decoding, refining,
                    ("6. Quality gate and save", [[gate_note, gate, save_note], [save]]),
                    ("7. Previews", [[composite, comp_preview], [err_preview]])])
    return g


def refine_folder():
    g = Graph()
    overview = g.note(None, [420, 620], title="Read me: refine a folder of RGBA portraits", text="""Turn existing RGBA portraits (for example Layer Diffusion outputs) into a matting dataset: load -> Connectivity Refine -> Pad Foreground -> Quality Gate -> Save Matting Dataset.

1. Put the RGBA PNG files in ComfyUI/input/ld_portrait_inputs/ (or type another folder, absolute or relative to the input folder, into Load RGBA Portrait's path).
2. The 'sample index' counter picks the N-th PNG of the folder (sorted by name) and names the sample (index 7 -> id 000007). Its control is 'increment': every run takes the next file.
3. Set the batch count beside Queue to the number of files (Load RGBA Portrait's count output) and press Queue once. out_of_range is 'error', so running past the last file stops with a message instead of starting again from the first file under new ids.
4. To start over, set the counter back to 0. Ids already complete in the dataset are skipped, so repeating a range is harmless.

Samples go to ComfyUI/output/ld_portrait_refined/ (fg/, alpha/, raw_alpha/, error_maps/, meta/, manifest.jsonl; rejected/ for samples the gate refuses).""")
    counter = g.node("PrimitiveInt", None, {"value": 0}, title="sample index", controls={"value": "increment"},
                     size=[320, 90])
    load = g.node("LDPLoadRGBA", None, {"path": "ld_portrait_inputs", "index": 0, "out_of_range": "error"},
                  size=[380, 190])
    load_note = g.note(None, [380, 250], title="Load", text="""The 'sample index' counter (control: increment) drives both the file index and the dataset id.

Load RGBA Portrait returns the colour and the alpha (1 = opaque portrait; unlike core Load Image, whose mask is inverted).

Files without an alpha channel stop the run with a message that names the file.""")
    refine_note = g.note(None, [400, 270], title="Refine and pad", text="""Refine Alpha repairs the alpha with the portrait connectivity prior: speckle and blotches inside the body and pinholes become opaque, faint floating debris is removed, the fade at the frame is fixed; hair and soft edges connected to the background are kept. strength chooses how hard; every parameter is in Connectivity Refine Alpha, Advanced.

Pad Foreground then fills the colour where the refined alpha is 0 with the colour of the nearby portrait, so composites show no dark fringe.""")
    g.link(counter, 0, load, "index")
    refine, pad = refine_and_pad(g, image=(load, 0), alpha=(load, 1))
    gate_note = g.note(None, [400, 230], title="Quality gate", text="""Quality Gate rejects empty mattes, several people, heads cut off at the top or sides, mattes that needed too many corrections, nearly binary alpha, translucent objects and tiny or off-centre subjects. The file's own alpha is the raw alpha it compares against.""")
    gate = quality_gate(g, (refine, 0), raw_alpha=(load, 1), refine=refine)
    save_note = g.note(None, [440, 230], title="Save", text="""Save Matting Dataset writes ComfyUI/output/ld_portrait_refined/: fg/ (padded colour), alpha/ (refined), raw_alpha/ (the file's alpha), error_maps/, meta/ and manifest.jsonl. Writes are atomic and complete ids are skipped.

Check the result with: ld-portrait dataset verify | stats | sheet""")
    save = save_dataset(g, "ld_portrait_refined", "existing RGBA files refined by LD-Portrait", {
        "foreground": (pad, 0), "alpha": (refine, 0), "sample_index": (counter, 0), "raw_alpha": (load, 1)},
        gate, refine=refine)
    err_preview = preview(g, (refine, 2), "Preview: error map (corrections in red)")
    arrange(g, [(None, [[overview]]), ("1. Load", [[load_note, counter, load]]),
                ("2. Refine and pad", [[refine_note, refine, pad]]),
                ("3. Quality gate and save", [[gate_note, gate, save_note], [save]]), ("Preview", [[err_preview]])])
    return g


def write(name, g):
    """workflows/<title>.json (UI, the template browser lists it under its file name) and
    workflows/api/<name>.json (API, the name the CLI and the docs use); the UI file records its API twin."""
    ui, api = g.ui(), g.api()
    ui["extra"]["ld_portrait"] = {"api_workflow": f"api/{name}.json"}
    (REPO / "workflows" / f"{TITLES[name]}.json").write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (REPO / "workflows" / "api" / f"{name}.json").write_text(json.dumps(api, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    from graph import spec_of
    problems = T.check_ui_workflow(ui, spec_of) + T.check_api_workflow(api, spec_of) + \
        T.compare_ui_api(ui, api, spec_of) + T.overlapping_nodes(ui)
    print(name, "problems:", problems)


# UI workflows that are no longer built (renamed or removed) must not linger in the template browser.
for _old in (REPO / "workflows").glob("*.json"):
    if _old.stem not in TITLES.values():
        _old.unlink()
        _old.with_suffix(".jpg").unlink(missing_ok=True)

write("ld_portrait_20k_generate", generation())
write("ld_portrait_refine_folder", refine_folder())
write("ld_portrait_generate_preview", generation(preview_only=True))

# More graphs live beside this file in graphs_<topic>.py modules, each with
# WORKFLOWS = {"<workflow name>": <function returning a Graph>}.
import importlib  # noqa: E402

for _path in sorted(Path(__file__).resolve().parent.glob("graphs_*.py")):
    for _name, _build in importlib.import_module(_path.stem).WORKFLOWS.items():
        write(_name, _build())

# Thumbnails for the template browser (workflows/<name>.jpg), drawn from the workflows just written.
import thumbnails  # noqa: E402

for _thumb in thumbnails.write_thumbnails():
    print("thumbnail", _thumb.name)
