"""Layer Diffusion nodes inside the real host: transparent decode and the UNet patch.

* Transparent decode: a random-weight decoder file in the published layout (seeded, written
  into the host's ``models/layer_model``), two real Layer Diffusion portraits scaled to 64x64
  and a seeded latent (core ``LoadLatent``) go through ``LDPTransparentDecoderLoader`` ->
  ``LDPTransparentDecode`` -> core ``SaveImage`` / ``MaskToImage``. The saved files must equal
  what the library decodes in this process from the same file and inputs (float32, CPU), to
  one 8-bit step.
* Patch: the test-only scaffold nodes (see ``conftest.py``) wrap a tiny module with SDXL-style
  weight names in the host's own ``ModelPatcher``; ``LDPLayerDiffusionPatch`` patches it with a
  file written here, and the scaffold loads the result through the host's model management (as
  a sampler does) and saves the weights. They must be ``W + strength * up @ down`` (low-rank
  entries) and ``W + strength * diff``, computed here, with the original model left untouched.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import safetensors.torch
import torch

from helpers import tiny_unet
from helpers.host_images import assert_within_one_step, read_rgb, saved_8bit

from comfyui_ld_portrait.dataset.imagefiles import read_rgba, write_png_atomic
from comfyui_ld_portrait.layerdiffusion.decoder import random_decoder_state_dict
from comfyui_ld_portrait.layerdiffusion.preview import checkerboard_preview
from comfyui_ld_portrait.layerdiffusion.tta import decode_transparent
from comfyui_ld_portrait.layerdiffusion.weights import load_transparent_decoder

DECODER_FILE = "ldp_host_random_decoder.safetensors"  # not the published name: other tests
PATCH_FILE = "ldp_host_tiny_attn.safetensors"         # treat published names as placeholders
LATENT_FILE = "ldp_host_decode.latent"
IMAGE_FOLDER = "ldp_decode"
SIZE = 64          # pixels; the latent is SIZE / 8 = 8x8
BATCH = 2

# Weights of the scaffold's tiny model that the patch file changes (it has the layout of
# helpers.tiny_unet plus an unpatched attn1.to_k; the norm bias is not patched either).
Q = tiny_unet.PREFIX + tiny_unet.Q + ".weight"
K2 = tiny_unet.PREFIX + tiny_unet.K2 + ".weight"
CONV_W = tiny_unet.PREFIX + tiny_unet.CONV + ".weight"
CONV_B = tiny_unet.PREFIX + tiny_unet.CONV + ".bias"
NORM_W = tiny_unet.PREFIX + tiny_unet.NORM + ".weight"


# --- transparent decode -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def decode_inputs(comfy_host, layerdiffuse_dir):
    """Decoder file, two 64x64 RGBA portraits and a seeded latent in the host's folders.

    Returns the decoder path, the RGB pixels ``[B, 3, H, W]`` exactly as ``LDPLoadRGBA`` gives
    them to the graph, and the latent ``[B, 4, H/8, W/8]``.
    """
    decoder_path = comfy_host.models_dir / "layer_model" / DECODER_FILE
    safetensors.torch.save_file(random_decoder_state_dict(seed=7, dtype=torch.float16), str(decoder_path))

    folder = comfy_host.input_dir / IMAGE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    pixels = []
    for position, source in enumerate(("i2i_0_transparent.png", "t2i_0_transparent.png")):
        rgb, alpha = read_rgba(layerdiffuse_dir / source)
        rgba = cv2.resize(np.dstack([rgb, alpha]), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        target = folder / f"{position}.png"
        write_png_atomic(target, np.clip(rgba, 0, 1))
        rgb_loaded, _ = read_rgba(target)  # what the host's loader will read back
        pixels.append(torch.from_numpy(rgb_loaded).permute(2, 0, 1))

    latent = torch.randn(BATCH, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(11))
    # LoadLatent divides by 0.18215 unless this marker is present; with it the values pass as is.
    safetensors.torch.save_file({"latent_tensor": latent, "latent_format_version_0": torch.tensor([])},
                                str(comfy_host.input_dir / LATENT_FILE))
    yield decoder_path, torch.stack(pixels), latent
    # 200 MB: not kept in pytest's temp folders; and models/layer_model is left as found.
    decoder_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def library_decoder(decode_inputs):
    decoder_path = decode_inputs[0]
    return load_transparent_decoder(decoder_path, device=torch.device("cpu"), dtype=torch.float32)


def _decode_graph(passes: str, prefix: str) -> dict:
    return {
        "1": {"class_type": "LDPLoadRGBA", "inputs": {"path": IMAGE_FOLDER, "index": 0}},
        "2": {"class_type": "LDPLoadRGBA", "inputs": {"path": IMAGE_FOLDER, "index": 1}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "LoadLatent", "inputs": {"latent": LATENT_FILE}},
        "5": {"class_type": "LDPTransparentDecoderLoader", "inputs": {"decoder_file": DECODER_FILE}},
        "6": {"class_type": "LDPTransparentDecode",
              "inputs": {"samples": ["4", 0], "images": ["3", 0], "decoder": ["5", 0],
                         "passes": passes, "sub_batch": 8}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": f"{prefix}_fg"}},
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["6", 1]}},
        "9": {"class_type": "SaveImage",
              "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}_alpha"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6", 3],
                                                     "filename_prefix": f"{prefix}_preview"}},
    }


def _check_decode_outputs(comfy_host, entry, expected: torch.Tensor, what: str) -> None:
    """Saved foreground, alpha and preview equal the library's decode ``expected`` [B,4,H,W]."""
    alpha = expected[:, 0]
    foreground = expected[:, 1:].permute(0, 2, 3, 1)
    preview = checkerboard_preview(foreground, alpha)
    pictures = {"fg": ("7", foreground.numpy()),
                "alpha": ("9", alpha[..., None].expand(-1, -1, -1, 3).numpy()),  # MaskToImage: grey
                "preview": ("10", preview.numpy())}
    for name, (node, wanted) in pictures.items():
        files = comfy_host.output_files(entry, node)
        assert len(files) == BATCH, f"{what} {name}: {len(files)} files saved, expected {BATCH}"
        for index, path in enumerate(files):
            assert path.is_file(), f"{what} {name}: {path} was reported but not written"
            saved = read_rgb(path)
            assert saved.shape == (SIZE, SIZE, 3), f"{what} {name} {path.name}: shape {saved.shape}"
            assert_within_one_step(saved, saved_8bit(wanted[index]), f"{what} {name} #{index}")


@pytest.fixture(scope="module")
def two_pass_entry(comfy_host, decode_inputs):
    """History entry of the two-pass decode graph (run once; it also fills the host's cache)."""
    offset = comfy_host.log_size()
    entry = comfy_host.run(_decode_graph("2", "ldp_decode2"), timeout=240)
    assert not comfy_host.problems_logged(offset), comfy_host.problems_logged(offset)
    return entry


def test_transparent_decode_runs_in_host_and_matches_library(comfy_host, decode_inputs, library_decoder,
                                                             two_pass_entry):
    _, pixels, latent = decode_inputs
    entry = two_pass_entry
    expected = decode_transparent(library_decoder, pixels, latent, passes=2)
    # A random decoder still gives a picture with structure: not a constant that any bug matches.
    assert float(expected[:, 0].std()) > 0.01
    _check_decode_outputs(comfy_host, entry, expected, "passes=2")


def test_transparent_decode_eight_passes_reuses_cached_decoder(comfy_host, decode_inputs, library_decoder,
                                                               two_pass_entry):
    _, pixels, latent = decode_inputs
    # The two-pass graph ran just before (fixture): everything but the decode is served from
    # the host's cache, the loaded decoder object included.
    entry = comfy_host.run(_decode_graph("8", "ldp_decode8"), timeout=240)
    cached = comfy_host.cached_nodes(entry)
    assert {"1", "2", "3", "4", "5"} <= cached, f"the host re-ran cached nodes; cached: {sorted(cached)}"
    assert "6" not in cached, "changing passes must re-run the decode"
    expected = decode_transparent(library_decoder, pixels, latent, passes=8)
    _check_decode_outputs(comfy_host, entry, expected, "passes=8")


def test_transparent_decode_refuses_mismatched_sizes_with_clear_message(comfy_host, decode_inputs):
    graph = _decode_graph("1", "ldp_decode_bad")
    graph["4"] = {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE * 2, "height": SIZE,
                                                               "batch_size": BATCH}}
    status, response = comfy_host.submit(graph)
    assert status == 200 and not response.get("node_errors"), response  # valid graph, bad data
    entry = comfy_host.wait(response["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "error"
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["node_type"] == "LDPTransparentDecode", entry["status"]
    assert "connect the VAE Decode of these same samples" in errors[0]["exception_message"], errors[0]


# --- UNet patch on the host's ModelPatcher ----------------------------------------------------------

def _expected_deltas(entries: dict) -> dict:
    """Weight differences at strength 1, written out by hand (not with the library)."""
    def up_down(key):
        up, down = entries[f"{key}::lora::0"], entries[f"{key}::lora::1"]
        return up.flatten(1) @ down.flatten(1)

    return {
        Q: up_down(Q),
        K2: up_down(K2),
        CONV_W: up_down(CONV_W).reshape(8, 4, 3, 3),
        CONV_B: entries[f"{CONV_B}::diff::0"],
        NORM_W: entries[f"{NORM_W}::diff::0"],
    }


@pytest.fixture(scope="module")
def patch_file(comfy_host):
    path = comfy_host.models_dir / "layer_model" / PATCH_FILE
    entries = tiny_unet.tiny_patch_entries(seed=5)  # for the scaffold's model
    safetensors.torch.save_file(entries, str(path))
    yield entries
    # Leave models/layer_model as found: the file COMBOs' defaults depend on what is there,
    # and test_host_pack compares them with the declared ones.
    path.unlink(missing_ok=True)


def _patch_graph(strength: float, tag: str) -> dict:
    return {
        "1": {"class_type": "HostTestTinySDXLModel", "inputs": {"seed": 3}},
        "2": {"class_type": "LDPLayerDiffusionPatch",
              "inputs": {"model": ["1", 0], "patch_file": PATCH_FILE, "strength": strength}},
        "3": {"class_type": "HostTestSaveLoadedWeights",
              "inputs": {"model": ["2", 0], "filename": f"ldp_patched_{tag}.safetensors"}},
        "4": {"class_type": "HostTestSaveLoadedWeights",
              "inputs": {"model": ["1", 0], "filename": f"ldp_original_{tag}.safetensors"}},
    }


def _run_patch_graph(comfy_host, strength: float, tag: str):
    entry = comfy_host.run(_patch_graph(strength, tag))
    patched = safetensors.torch.load_file(str(comfy_host.output_dir / f"ldp_patched_{tag}.safetensors"))
    original = safetensors.torch.load_file(str(comfy_host.output_dir / f"ldp_original_{tag}.safetensors"))
    types = {node: json.loads(entry["outputs"][node]["ldp_patch_types"][0]) for node in ("3", "4")}
    return entry, patched, original, types


def _check_patched(patched: dict, original: dict, deltas: dict, strength: float) -> None:
    assert set(patched) == set(original) and set(deltas) < set(original), sorted(patched)
    for key in original:
        wanted = original[key] + strength * deltas[key] if key in deltas else original[key]
        assert torch.allclose(patched[key], wanted, rtol=1e-5, atol=1e-5), (
            f"{key} at strength {strength}: max error {float((patched[key] - wanted).abs().max()):.3g}")


def test_layer_diffusion_patch_on_host_model_patcher(comfy_host, patch_file):
    deltas = _expected_deltas(patch_file)
    offset = comfy_host.log_size()
    _, patched, original, types = _run_patch_graph(comfy_host, 0.75, "a")
    assert not comfy_host.problems_logged(offset), comfy_host.problems_logged(offset)
    # Our patches reach the host as plain full differences, one per patched weight.
    assert types["3"] == {key: ["diff"] for key in deltas}, types["3"]
    assert types["4"] == {}, "the patch node must work on a copy: the original MODEL has patches"
    assert all(not torch.equal(patched[key], original[key]) for key in deltas)
    _check_patched(patched, original, deltas, 0.75)

    # Again with another strength: the tiny model comes from the host's cache, the patch node
    # re-runs, and the original weights are what they were before the first patched load.
    entry, patched_b, original_b, types_b = _run_patch_graph(comfy_host, -0.5, "b")
    assert "1" in comfy_host.cached_nodes(entry) and "2" not in comfy_host.cached_nodes(entry)
    assert types_b["3"] == {key: ["diff"] for key in deltas}
    for key in original:
        assert torch.equal(original_b[key], original[key]), f"{key}: the original model was modified"
    _check_patched(patched_b, original_b, deltas, -0.5)


def test_layer_diffusion_patch_refuses_a_file_for_another_model(comfy_host, patch_file):
    """A patch whose shapes do not fit the connected model fails with a message that names
    the host's model kind, not with a shape error deep inside the host."""
    wrong = dict(patch_file)
    wrong[f"{NORM_W}::diff::0"] = torch.zeros(320)  # SD1.5-sized norm on this model
    name = "ldp_host_wrong_attn.safetensors"
    path = comfy_host.models_dir / "layer_model" / name
    safetensors.torch.save_file(wrong, str(path))
    try:
        graph = _patch_graph(1.0, "wrong")
        graph["2"]["inputs"]["patch_file"] = name
        del graph["4"]
        status, response = comfy_host.submit(graph)
        assert status == 200 and not response.get("node_errors"), response
        entry = comfy_host.wait(response["prompt_id"], timeout=120)
    finally:
        path.unlink()
    assert entry["status"]["status_str"] == "error"
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["node_type"] == "LDPLayerDiffusionPatch", entry["status"]
    message = errors[0]["exception_message"]
    assert "The connected model is SDXL." in message and NORM_W in message, message
