"""Shipped matting workflows: green-screen generation + keying + save, and video matting from
folders to an RGBA PNG sequence (built by build_workflows.py)."""
import json

from graph import Graph, arrange, preview, prompt_and_sample, quality_gate, save_dataset

from comfyui_ld_portrait.prompting import preset_text

GREEN_SCREEN_LINE = ("standing in front of a plain uniform bright green screen, chroma key green "
                     "studio backdrop, evenly lit background,\nsingle person, centered,")
GREEN_SCREEN_NEGATIVE = ("green clothing, green hair, green accessories, green skin tint, "
                         "shadows on the backdrop, patterned background,\n")


def green_screen_template() -> str:
    """The ld_portrait preset with the background asked for as a plain green screen."""
    text = preset_text("ld_portrait")
    assert "single person, centered," in text and "[negative]\n" in text
    text = text.replace("single person, centered,", GREEN_SCREEN_LINE, 1)
    return text.replace("[negative]\n", "[negative]\n" + GREEN_SCREEN_NEGATIVE, 1)


def green_screen_key():
    g = Graph()
    overview = g.note(None, [420, 640], title="Read me: green-screen portraits, keyed", text="""The paper's chroma-keying comparison as a graph: the same prompt template as the LD-Portrait-20K workflow, asking for a plain green screen behind the person, SDXL without Layer Diffusion, then Chroma Key, Quality Gate and Save Matting Dataset into a second dataset root.

Compare the two datasets afterwards:
ld-portrait dataset stats ComfyUI/output/ld_portrait_greenscreen
ld-portrait dataset stats ComfyUI/output/ld_portrait_20k

The template's index is 'increment': set the batch count beside Queue and press Queue. Ids follow the index (the same ids as the Layer Diffusion dataset for the same index and seed, so the pairs line up).

Headless, on existing green-screen photographs:
ld-portrait key INPUT_DIR OUTPUT_DIR""")
    ckpt = g.node("CheckpointLoaderSimple", None, {"ckpt_name": "sd_xl_base_1.0.safetensors"},
                  title="Load Checkpoint (SDXL base 1.0)", size=[420, 110],
                  models=[{"name": "sd_xl_base_1.0.safetensors", "directory": "checkpoints",
                           "url": "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"}])
    prompt_note = g.note(None, [460, 200], title="Prompt", text="""The ld_portrait template with 'in front of a plain uniform bright green screen' added and green clothing / hair / tints in the negative: a keyer cannot separate a green subject from a green screen. preset is 'custom' so this text is used; edit it freely.""")
    template = g.node("LDPPromptTemplate", None,
                      {"preset": "custom", "template": green_screen_template(), "index": 0,
                       "seed": 0, "mode": "enumerate"},
                      controls={"index": "increment", "seed": "fixed"}, size=[460, 500])
    sampled = prompt_and_sample(g, template, model=(ckpt, 0), clip=(ckpt, 1), vae=(ckpt, 2))
    vae = sampled["vae_decode"]
    key_note = g.note(None, [420, 260], title="Chroma key", text="""Colour-difference keying against a clean plate (the screen colour estimated at every pixel, so uneven lighting keys cleanly). clip_black / clip_white stretch the matte; spill_strength removes green cast from hair and skin; edge_softness blurs the alpha. key_colour 'auto' measures the screen on the image border.

Quality Gate and Save then work as in the Layer Diffusion workflow.""")
    key = g.node("LDPChromaKey", None, size=[420, 250])
    g.link(vae, 0, key, "image")
    gate = quality_gate(g, (key, 1))
    models = json.dumps({"checkpoint": "sd_xl_base_1.0.safetensors", "matting": "chroma key (LD-Portrait)"}, indent=1)
    save = save_dataset(g, "ld_portrait_greenscreen", models, {
        "foreground": (key, 0), "alpha": (key, 1), "sample_index": (template, 4)}, gate, template=template)
    keyed = preview(g, (key, 2), "Preview: keyed portrait (checkerboard)")
    photo = preview(g, (vae, 0), "Preview: green-screen photograph")
    arrange(g, [(None, [[overview]]), ("1. Model and prompt", [[ckpt, prompt_note], [template]]),
                ("2. Sample (no Layer Diffusion)",
                 [[sampled[name] for name in ("pos_enc", "neg_enc", "latent")], [sampled["sampler"], sampled["vae_decode"]]]),
                ("3. Chroma key", [[key_note, key], [photo]]), ("4. Quality gate and save", [[gate], [save]]),
                ("Preview", [[keyed]])])
    return g


def video_matte():
    g = Graph()
    overview = g.note(None, [420, 600], title="Read me: video portrait matting", text="""Matte a clip from folders: frames + one person mask per frame (from any video segmentation) -> RGBA PNG sequence.

1. Put the frames in ComfyUI/input/clip/frames/ as PNG files named in time order (frame_0001.png ...).
2. Put the masks in ComfyUI/input/clip/masks/ with the same file names (8-bit, white = person).
3. Queue. The RGBA frames go to ComfyUI/output/video_matte/ with the frames' names.

Video Matte stabilises the masks over time (median + hysteresis), draws a trimap band that follows the motion, mattes each frame with closed-form matting, and smooths alpha over time where the picture is static.

Headless:
ld-portrait video-matte FRAMES_DIR MASKS_DIR OUT_DIR""")
    frames = g.node("LDPLoadFrameFolder", None, {"folder": "clip/frames", "max_frames": 0}, size=[380, 110])
    masks = g.node("LDPLoadMaskFolder", None, {"folder": "clip/masks"}, size=[380, 110])
    matte_note = g.note(None, [400, 220], title="Video matte", text="""band: half-width of the unknown band (0 = 2% of the shorter side). smoothing: temporal smoothing on static parts (0 = frames independent). A mask from a node whose MASK is inverted (core Load Image): turn on invert.

Long clips: all frames are held in memory; split very long clips into parts.""")
    matte = g.node("LDPVideoMatte", None, size=[400, 250])
    save = g.node("LDPSaveRGBASequence", None, {"folder_name": "video_matte"}, size=[380, 110])
    g.link(frames, 1, masks, "names")
    g.link(frames, 0, matte, "frames")
    g.link(masks, 0, matte, "masks")
    g.link(matte, 0, save, "rgba")
    g.link(frames, 1, save, "names")
    rgba_preview = preview(g, (matte, 0), "Preview: RGBA frames")
    arrange(g, [(None, [[overview]]), ("1. Load frames and masks", [[frames, masks]]),
                ("2. Matte", [[matte_note, matte]]), ("3. Save RGBA sequence", [[save, rgba_preview]])])
    return g


WORKFLOWS = {"ld_portrait_greenscreen_key": green_screen_key,
             "ld_portrait_video_matte": video_matte}
