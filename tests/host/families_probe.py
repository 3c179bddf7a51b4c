"""Run inside a ComfyUI checkout's Python (cwd = COMFYUI_DIR): checks the Flux and SD1.5 facts on
the host's own code and prints one JSON object. Used by test_host_families.py; not collected.

- ``flux_latent``: ``latent_formats.Flux.process_out`` equals ``x / scaling + shift`` with the
  constants of our table (what the Flux reference decodes), and the sampler's output goes
  through ``process_latent_out``.
- ``flux_lora``: a LoRA in the diffusers Flux layout (``transformer.<diffusers key>.lora_A/B``)
  over every linear weight of a tiny Flux model maps through ``comfy.lora.model_lora_keys_unet``
  and ``load_lora``; loaded by the host's model management, the qkv rows get exactly B @ A.
- ``sd15_attention``: our patch node applies an SD1.5 attention-sharing file to a tiny model of
  the host's ``CrossAttention`` modules in a real ``ModelPatcher``; after loading, each wrapped
  attention equals the reference unit computed here, and unpatching restores everything.
"""
import inspect
import json
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(sys.argv[1]).resolve()
sys.argv = [sys.argv[0], "--cpu"]  # read by comfy.cli_args on import: run on the CPU
sys.path.insert(0, str(Path.cwd()))
package = types.ModuleType("comfyui_ld_portrait")  # the pack's subpackages without its __init__
package.__path__ = [str(REPO)]
sys.modules["comfyui_ld_portrait"] = package
nodes_package = types.ModuleType("comfyui_ld_portrait.nodes")  # one node module, not all of them
nodes_package.__path__ = [str(REPO / "nodes")]
sys.modules["comfyui_ld_portrait.nodes"] = nodes_package

import safetensors.torch  # noqa: E402
import torch  # noqa: E402

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()  # as main.py does, so that --cpu is honoured

import comfy.latent_formats  # noqa: E402
import comfy.lora  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402

from comfyui_ld_portrait.layerdiffusion import model_files  # noqa: E402
from comfyui_ld_portrait.layerdiffusion.attention_sharing import SD15_ATTENTION_MODULES  # noqa: E402

results = {}


def flux_latent():
    x = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    ours = x / model_files.FLUX_VAE_SCALING_FACTOR + model_files.FLUX_VAE_SHIFT_FACTOR
    host = comfy.latent_formats.Flux().process_out(x)
    return {"max_difference": float((host - ours).abs().max()),
            "latent_channels": comfy.latent_formats.Flux().latent_channels,
            "sampler_returns_process_latent_out": "process_latent_out(samples" in inspect.getsource(comfy.samplers)}


def tiny_flux_model():
    import comfy.ldm.flux.model
    import comfy.supported_models

    unet_config = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2,
                   "vec_in_dim": 8, "context_in_dim": 8, "hidden_size": 32, "mlp_ratio": 4.0,
                   "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [4, 6, 6],
                   "theta": 10000, "qkv_bias": True, "guidance_embed": True}
    if "txt_ids_dims" in inspect.signature(comfy.ldm.flux.model.FluxParams).parameters:
        unet_config["txt_ids_dims"] = []  # newer hosts: what model_detection sets for FLUX.1
    config = comfy.supported_models.Flux(unet_config)
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "", device=torch.device("cpu"))
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape) * 0.1)
    return model, unet_config


def flux_lora():
    model, unet_config = tiny_flux_model()
    key_map = comfy.lora.model_lora_keys_unet(model, {})
    diffusers = comfy.utils.flux_to_diffusers(unet_config, output_prefix="diffusion_model.")
    weights = model.state_dict()
    g = torch.Generator().manual_seed(1)
    lora, expected = {}, {}
    for key, target in diffusers.items():
        if not key.endswith(".weight"):
            continue
        name, offset = (target[0], target[1]) if isinstance(target, tuple) else (target, None)
        # (name, None, function): the host transforms the delta (norm_out's scale/shift swap).
        transform = target[2] if isinstance(target, tuple) and len(target) > 2 else (lambda t: t)
        if name not in weights or weights[name].ndim != 2:
            continue  # norms: not LoRA targets
        rows = offset[2] if offset else weights[name].shape[0]
        down = torch.randn(2, weights[name].shape[1], generator=g) * 0.1
        up = torch.randn(rows, 2, generator=g) * 0.1
        stem = "transformer." + key[: -len(".weight")]
        lora[stem + ".lora_A.weight"], lora[stem + ".lora_B.weight"] = down, up
        expected.setdefault(name, torch.zeros_like(weights[name]))
        start = offset[1] if offset else 0
        expected[name][start:start + rows] += transform(up @ down)
    patches = comfy.lora.load_lora(lora, key_map)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))
    original = {k: v.clone() for k, v in weights.items()}
    added = patcher.add_patches(patches, 1.0)
    comfy.model_management.load_models_gpu([patcher])
    loaded = patcher.model.state_dict()
    worst = max(float((loaded[name] - original[name] - delta).abs().max()) for name, delta in expected.items())
    untouched = [k for k in original if k not in expected and not torch.equal(loaded[k], original[k])]
    return {"lora_modules": len(lora) // 2, "host_patches": len(patches), "added": len(added),
            "patched_weights": len(expected), "max_difference": worst, "changed_unpatched": untouched}


def sd15_attention():
    from comfy.ldm.modules.attention import CrossAttention
    import comfy.ops

    sys.path.insert(0, str(REPO / "tests"))
    from helpers.sd15_attention import attention_sharing_file, reference_unit

    torch.manual_seed(0)
    root = torch.nn.Module()
    root.diffusion_model = torch.nn.Module()
    modules = {}
    for path in SD15_ATTENTION_MODULES:
        width = 8 if "input_blocks.1." in path or "input_blocks.2." in path else 16
        context = None if path.endswith("attn1") else 6
        attention = CrossAttention(width, context_dim=context, heads=2, dim_head=width // 2,
                                   operations=comfy.ops.disable_weight_init)
        with torch.no_grad():
            for parameter in attention.parameters():
                parameter.copy_(torch.randn(parameter.shape) * 0.3)
        modules[path] = attention
        parent = root.diffusion_model
        *parts, last = path.split(".")
        for part in parts:
            if not hasattr(parent, part):
                parent.add_module(part, torch.nn.Module())
            parent = getattr(parent, part)
        parent.add_module(last, attention)
    original = {k: v.clone() for k, v in root.state_dict().items()}
    state = attention_sharing_file(modules)
    folder = Path(tempfile.mkdtemp())
    safetensors.torch.save_file(state, str(folder / "layer_sd15_transparent_attn.safetensors"))

    from comfyui_ld_portrait.nodes import layerdiffusion as ldn

    ldn.resolve_layer_model = lambda name: folder / name  # the file written here, not models/
    patcher = comfy.model_patcher.ModelPatcher(root, load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))
    # DECLARED: the node's own class, whose patch() runs it; with the host's comfy_api importable
    # here, LDPLayerDiffusionPatch is the V3 node built from it (nodes/_schema.py).
    patch_node = ldn.LDPLayerDiffusionPatch.DECLARED()
    (patched,) = patch_node.patch(patcher, "layer_sd15_transparent_attn.safetensors", 1.0)
    comfy.model_management.load_models_gpu([patched])
    worst, wrapped = 0.0, 0
    g = torch.Generator().manual_seed(2)
    for index, path in enumerate(SD15_ATTENTION_MODULES):
        live = comfy.utils.get_attr(patched.model, "diffusion_model." + path)
        wrapped += type(live).__name__ == "TemporalResidual"
        width = 8 if "input_blocks.1." in path or "input_blocks.2." in path else 16
        h = torch.randn(2, 5, width, generator=g)
        ctx = None if path.endswith("attn1") else torch.randn(2, 3, 6, generator=g)
        original_weights = {k[len("diffusion_model." + path) + 1:]: v for k, v in original.items()
                            if k.startswith("diffusion_model." + path + ".")}
        with torch.no_grad():
            expected = reference_unit(original_weights, state, index, h, ctx, heads=2)
            actual = live(h, context=ctx)
        worst = max(worst, float((actual - expected).abs().max()))
    patched.unpatch_model()
    restored = all(torch.equal(root.state_dict()[k], v) for k, v in original.items())
    back = all(comfy.utils.get_attr(root, "diffusion_model." + p) is modules[p] for p in SD15_ATTENTION_MODULES)
    return {"wrapped": wrapped, "max_difference": worst, "weights_restored": restored,
            "modules_restored": back}


for name, check in (("flux_latent", flux_latent), ("flux_lora", flux_lora), ("sd15_attention", sd15_attention)):
    try:
        results[name] = check()
    except Exception as error:  # reported by the test with the host's own words
        results[name] = {"error": f"{type(error).__name__}: {error}"}
print("LDP_RESULT " + json.dumps(results))
