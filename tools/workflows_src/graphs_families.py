"""Flux and SD1.5 transparent-portrait workflows (ld_portrait_flux_generate, ld_portrait_sd15_generate).

Same pipeline as the SDXL generation graph after sampling (transparent decode -> refine -> pad
-> gate -> save); the model section differs:

- Flux: UNETLoader (FLUX.1-dev) -> LoraLoaderModelOnly (layerlora.safetensors) -> KSampler at
  cfg 1 with FluxGuidance 3.5; DualCLIPLoader (clip_l + t5xxl, type flux); VAELoader (ae);
  Load Transparent Decoder reads the converted flux_vae_transparent_decoder.
- SD1.5: Load Checkpoint (SD1.5) -> Apply Layer Diffusion (layer_sd15_transparent_attn);
  Load Transparent Decoder reads layer_sd15_vae_transparent_decoder.

Every model file name, folder and URL comes from layerdiffusion/model_files.py.
"""
import json

from graph import (Graph, arrange, preview, prompt_and_sample, quality_gate, refine_and_pad, save_dataset,
                   transparent_decode)

from comfyui_ld_portrait.layerdiffusion import model_files as MF


def _layer(key):
    return MF.MODEL_FILES[key]


def _base(key):
    name, folder, url, licence = MF.BASE_MODELS[key]
    return {"name": name, "directory": folder, "url": url}, licence


def _models_entry(key):
    spec = _layer(key)
    return [{"name": spec.file_name, "directory": spec.folder, "url": spec.url()}] if spec.url() else None


def _model_note(lines, download):
    text = ["Model files: put them here, then press R in the editor to refresh the lists.", ""]
    for folder, name, what in lines:
        text.append(f"- models/{folder}/{name}\n  {what}")
    text += ["", download, "",
             "If you change a file, also update the 'models' text of Save Matting Dataset: it is "
             "recorded with every sample."]
    return "\n".join(text)


def _flux_models(g):
    unet, unet_licence = _base("flux_unet")
    clip_l, _ = _base("flux_clip_l")
    t5, _ = _base("flux_t5")
    vae_file, _ = _base("flux_vae")
    lora, decoder = _layer("flux_lora"), _layer("flux_decoder")
    note = g.note(None, [420, 520], title="Models: where to put which file", text=_model_note([
        (unet["directory"], unet["name"], f"FLUX.1 [dev] ({unet_licence}; non-commercial)."),
        (clip_l["directory"], clip_l["name"], "CLIP-L text encoder (comfyanonymous/flux_text_encoders)."),
        (t5["directory"], t5["name"], "T5-XXL text encoder (same repository)."),
        (vae_file["directory"], vae_file["name"], "FLUX.1 VAE."),
        (lora.folder, lora.file_name, f"Layer Diffusion LoRA for Flux ({MF.FLUX_REPOSITORY}); applied by "
                                      "Load LoRA (model only)."),
        (decoder.folder, decoder.file_name, "Flux transparent decoder (16 latent channels), converted from "
                                            "the published TransparentVAE.pth."),
    ], "`ld-portrait models download --family flux` fetches the LoRA and TransparentVAE.pth and converts "
       "the latter (weights only, never unpickling code) into the decoder and encoder files; "
       "`ld-portrait models convert TransparentVAE.pth ComfyUI/models/layer_model` does the conversion "
       "alone. FLUX.1-dev and these Flux files are for non-commercial use."))
    unet_node = g.node("UNETLoader", None, {"unet_name": unet["name"], "weight_dtype": "default"},
                       title="Load Diffusion Model (FLUX.1-dev)", size=[420, 90], models=[unet])
    lora_node = g.node("LoraLoaderModelOnly", None, {"lora_name": lora.file_name, "strength_model": 1.0},
                       title="Load LoRA (Layer Diffusion for Flux)", size=[420, 90],
                       models=_models_entry("flux_lora"))
    clip = g.node("DualCLIPLoader", None, {"clip_name1": clip_l["name"], "clip_name2": t5["name"],
                                           "type": "flux", "device": "default"},
                  size=[420, 130], models=[clip_l, t5])
    vae = g.node("VAELoader", None, {"vae_name": vae_file["name"]}, size=[420, 60], models=[vae_file])
    decoder_node = g.node("LDPTransparentDecoderLoader", None, {"decoder_file": decoder.file_name},
                          size=[420, 70])
    g.link(unet_node, 0, lora_node, "model")
    return dict(note=note, column=[note, unet_node, lora_node, clip, vae, decoder_node],
                columns=[[note], [unet_node, lora_node, clip, vae, decoder_node]], model=(lora_node, 0),
                clip=(clip, 0), vae=(vae, 0), decoder=decoder_node)


def _sd15_models(g):
    checkpoint, licence = _base("sd15_checkpoint")
    attn, decoder = _layer("sd15_attn"), _layer("sd15_decoder")
    note = g.note(None, [420, 430], title="Models: where to put which file", text=_model_note([
        (checkpoint["directory"], checkpoint["name"], f"Stable Diffusion 1.5 ({licence}); other SD1.5 "
                                                      "checkpoints work too."),
        (attn.folder, attn.file_name, f"Layer Diffusion SD1.5 transparent attention ({MF.SDXL_REPOSITORY})."),
        (decoder.folder, decoder.file_name, "Layer Diffusion SD1.5 transparent decoder (same release)."),
    ], "`ld-portrait models download --family sd15` fetches the two Layer Diffusion files into "
       "models/layer_model."))
    ckpt = g.node("CheckpointLoaderSimple", None, {"ckpt_name": checkpoint["name"]},
                  title="Load Checkpoint (SD1.5)", size=[420, 110], models=[checkpoint])
    patch = g.node("LDPLayerDiffusionPatch", None, {"patch_file": attn.file_name, "strength": 1.0},
                   size=[420, 90], models=_models_entry("sd15_attn"))
    decoder_node = g.node("LDPTransparentDecoderLoader", None, {"decoder_file": decoder.file_name},
                          size=[420, 70], models=_models_entry("sd15_decoder"))
    g.link(ckpt, 0, patch, "model")
    return dict(note=note, column=[note, ckpt, patch, decoder_node], columns=[[note, ckpt, patch, decoder_node]],
                model=(patch, 0), clip=(ckpt, 1),
                vae=(ckpt, 2), decoder=decoder_node)


FAMILY = {
    "flux": dict(title="Flux", models=_flux_models, size=1024, dataset="ld_portrait_flux",
                 sampler={"seed": 0, "steps": 20, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple",
                          "denoise": 1.0},
                 sample_text="FLUX.1-dev with the Layer Diffusion LoRA at 1024 x 1024. Flux dev is "
                             "guidance-distilled: KSampler runs at cfg 1 (the negative prompt has no effect) and "
                             "Flux Guidance 3.5 sets the strength. euler / simple, 20 steps."),
    "sd15": dict(title="SD1.5", models=_sd15_models, size=512, dataset="ld_portrait_sd15",
                 sampler={"seed": 0, "steps": 25, "cfg": 7.0, "sampler_name": "dpmpp_2m", "scheduler": "karras",
                          "denoise": 1.0},
                 sample_text="SD1.5 with the Layer Diffusion attention patch at 512 x 512 (its training "
                             "size). dpmpp_2m / karras, 25 steps, cfg 7."),
}


def transparent_portraits(family):
    spec = FAMILY[family]
    g = Graph()
    overview = g.note(None, [420, 560], title=f"Read me: LD-Portrait generation with {spec['title']}", text=(
        f"One transparent portrait per run with {spec['title']} + Layer Diffusion, refined and saved into a "
        "matting dataset.\n\nFlow: models -> Prompt Template -> CLIP Text Encode (+/-) -> KSampler -> VAE "
        "Decode -> Transparent Decode (foreground F + alpha) -> Refine Alpha -> Pad Foreground -> "
        f"Quality Gate -> Save Matting Dataset (ComfyUI/output/{spec['dataset']}/).\n\nThe Prompt Template's "
        "index is 'increment': set the batch count beside Queue and press Queue. Headless: ld-portrait queue "
        f"workflows/api/ld_portrait_{family}_generate.json --dataset ComfyUI/output/{spec['dataset']} "
        "--range 0:100"))
    models = spec["models"](g)
    template = g.node("LDPPromptTemplate", None, {"preset": "ld_portrait", "index": 0, "seed": 0,
                                                  "mode": "enumerate"},
                      controls={"index": "increment", "seed": "fixed"}, size=[460, 500])
    sample_note = g.note(None, [360, 220], title="Encode and sample", text=spec["sample_text"] + (
        " The sampler seed is wired from the template (one seed per index, the same on every machine). "
        "Keep batch_size 1: the dataset id follows the index."))
    sampled = prompt_and_sample(g, template, model=models["model"], clip=models["clip"], vae=models["vae"],
                                size=spec["size"], sampler=spec["sampler"],
                                guidance=3.5 if family == "flux" else None)
    decode = transparent_decode(g, sampled, models["decoder"])
    raw_preview = preview(g, (decode, 3), "Preview: raw decode (checkerboard)", size=(380, 400))
    refine, pad = refine_and_pad(g, image=(decode, 0), alpha=(decode, 1))
    gate = quality_gate(g, (refine, 0), raw_alpha=(decode, 1), refine=refine)
    models_json = json.dumps({"family": family, "layer_diffusion": [
        g._by_id()[n]["widgets"].get("lora_name") or g._by_id()[n]["widgets"].get("patch_file")
        for n in models["column"] if g._by_id()[n]["type"] in ("LoraLoaderModelOnly", "LDPLayerDiffusionPatch")],
        "transparent_decoder": g._by_id()[models["decoder"]]["widgets"]["decoder_file"]}, indent=1)
    save = save_dataset(g, spec["dataset"], models_json, {
        "foreground": (pad, 0), "alpha": (refine, 0), "sample_index": (template, 4), "raw_alpha": (decode, 1)},
        gate, template=template, refine=refine)
    err_preview = preview(g, (refine, 2), "Preview: error map (corrections in red)")

    encode_column = [sample_note] + [sampled[name] for name in ("pos_enc", "neg_enc", "guidance", "latent")
                                     if sampled[name] is not None]
    arrange(g, [(None, [[overview]]), ("1. Models", models["columns"]), ("2. Prompt", [[template]]),
                ("3. Encode and sample", [encode_column, [sampled["sampler"], sampled["vae_decode"]]]),
                ("4. Transparent decode", [[decode, raw_preview]]), ("5. Refine and pad", [[refine, pad]]),
                ("6. Quality gate and save", [[gate], [save]]), ("Preview", [[err_preview]])])
    return g


WORKFLOWS = {
    "ld_portrait_flux_generate": lambda: transparent_portraits("flux"),
    "ld_portrait_sd15_generate": lambda: transparent_portraits("sd15"),
}
