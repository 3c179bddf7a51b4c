"""Shipped matting workflows: green-screen generation + keying + save, and video matting from
folders to an RGBA PNG sequence (built by build_workflows.py)."""
import json

from graph import Graph, layout

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
                      controls={"index": "increment", "seed": "fixed"}, size=[460, 560])
    pos_enc = g.node("CLIPTextEncode", None, {"text": ""}, title="CLIP Text Encode (prompt)", size=[360, 100])
    neg_enc = g.node("CLIPTextEncode", None, {"text": ""}, title="CLIP Text Encode (negative)", size=[360, 100])
    latent = g.node("EmptyLatentImage", None, {"width": 1024, "height": 1024, "batch_size": 1}, size=[360, 110])
    sampler = g.node("KSampler", None, {"seed": 0, "steps": 25, "cfg": 7.0, "sampler_name": "dpmpp_2m_sde",
                                        "scheduler": "karras", "denoise": 1.0},
                     controls={"seed": "fixed"}, size=[360, 270])
    vae = g.node("VAEDecode", None, size=[360, 50])
    key_note = g.note(None, [420, 260], title="Chroma key", text="""Colour-difference keying against a clean plate (the screen colour estimated at every pixel, so uneven lighting keys cleanly). clip_black / clip_white stretch the matte; spill_strength removes green cast from hair and skin; edge_softness blurs the alpha. key_colour 'auto' measures the screen on the image border.

Quality Gate and Save then work as in the Layer Diffusion workflow.""")
    key = g.node("LDPChromaKey", None, size=[420, 250])
    gate = g.node("LDPQualityGate", None, size=[400, 560])
    save = g.node("LDPSaveDataset", None, {"dataset_name": "ld_portrait_greenscreen",
                                           "models": json.dumps({"checkpoint": "sd_xl_base_1.0.safetensors",
                                                                 "matting": "chroma key (LD-Portrait)"}, indent=1)},
                  size=[440, 700], api_widgets={"models"})
    preview = g.node("PreviewImage", None, title="Preview: keyed portrait (checkerboard)", size=[420, 420])
    photo = g.node("PreviewImage", None, title="Preview: green-screen photograph", size=[420, 420])

    g.link(ckpt, 1, pos_enc, "clip")
    g.link(ckpt, 1, neg_enc, "clip")
    g.link(template, 0, pos_enc, "text")
    g.link(template, 1, neg_enc, "text")
    g.link(ckpt, 0, sampler, "model")
    g.link(template, 3, sampler, "seed")
    g.link(pos_enc, 0, sampler, "positive")
    g.link(neg_enc, 0, sampler, "negative")
    g.link(latent, 0, sampler, "latent_image")
    g.link(sampler, 0, vae, "samples")
    g.link(ckpt, 2, vae, "vae")
    g.link(vae, 0, key, "image")
    g.link(vae, 0, photo, "images")
    g.link(key, 1, gate, "alpha")
    g.link(key, 0, save, "foreground")
    g.link(key, 1, save, "alpha")
    g.link(template, 4, save, "sample_index")
    g.link(gate, 0, save, "keep")
    g.link(gate, 3, save, "verdict")
    g.link(template, 0, save, "prompt")
    g.link(template, 1, save, "negative")
    g.link(template, 2, save, "attributes")
    g.link(template, 3, save, "seed")
    g.link(key, 2, preview, "images")
    columns = [[overview], [ckpt, prompt_note, template], [pos_enc, neg_enc, latent, sampler, vae],
               [key_note, key, photo], [gate], [save], [preview]]
    layout(g, columns)
    g.group("1. Model and prompt", columns[1])
    g.group("2. Sample (no Layer Diffusion)", columns[2])
    g.group("3. Chroma key", columns[3])
    g.group("4. Quality gate and save", columns[4] + columns[5])
    g.group("Preview", columns[6])
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
    preview = g.node("PreviewImage", None, title="Preview: RGBA frames", size=[420, 420])
    g.link(frames, 1, masks, "names")
    g.link(frames, 0, matte, "frames")
    g.link(masks, 0, matte, "masks")
    g.link(matte, 0, save, "rgba")
    g.link(frames, 1, save, "names")
    g.link(matte, 0, preview, "images")
    columns = [[overview], [frames, masks], [matte_note, matte], [save, preview]]
    layout(g, columns)
    g.group("1. Load frames and masks", columns[1])
    g.group("2. Matte", columns[2])
    g.group("3. Save RGBA sequence", columns[3])
    return g


WORKFLOWS = {"ld_portrait_greenscreen_key": green_screen_key,
             "ld_portrait_video_matte": video_matte}
