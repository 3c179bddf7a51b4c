"""Layer Diffusion nodes called without the host: patch, decoder loader, transparent decode.

A random-weight decoder file in the published layout (built once per module) stands in for
``vae_transparent_decoder.safetensors``; patch files are generated for a small module with
SDXL-style key names; a fake ModelPatcher records what the patch node adds.
"""
import os
import sys
import types

import pytest
import safetensors.torch
import torch
from helpers.tiny_unet import CONV, K2, NORM, PREFIX, Q, tiny_patch_entries, tiny_sdxl_like_model
from torch import nn

from comfyui_ld_portrait.layerdiffusion import weights as ld_weights
from comfyui_ld_portrait.layerdiffusion.decoder import random_decoder_state_dict
from comfyui_ld_portrait.layerdiffusion.patches import (
    apply_patches_to_state_dict,
    patches_from_state_dict,
)
from comfyui_ld_portrait.layerdiffusion.preview import checkerboard_preview
from comfyui_ld_portrait.layerdiffusion.tta import decode_transparent
from comfyui_ld_portrait.layerdiffusion.weights import WeightFileError
from comfyui_ld_portrait.nodes import layerdiffusion as ldn
from comfyui_ld_portrait.nodes.layerdiffusion import (
    LDPLayerDiffusionPatch,
    LDPTransparentDecode,
    LDPTransparentDecoderLoader,
    TransparentDecoder,
)

PATCH_NAME = "layer_xl_transparent_attn.safetensors"
SD15_PATCH_NAME = "layer_sd15_transparent_attn.safetensors"
DECODER_NAME = "vae_transparent_decoder.safetensors"


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# --- files -------------------------------------------------------------------------------------

def sd15_like_entries():
    """A patch for another base model: a weight SDXL lacks and a norm of SD1.5's width."""
    entries = tiny_patch_entries()
    entries[f"{PREFIX}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight::lora::0"] = torch.zeros(16, 3)
    entries[f"{PREFIX}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight::lora::1"] = torch.zeros(3, 16)
    entries[f"{PREFIX}{NORM}.weight::diff::0"] = torch.zeros(320)
    return entries


@pytest.fixture(scope="module")
def layer_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layer_model")
    safetensors.torch.save_file(random_decoder_state_dict(), str(folder / DECODER_NAME))
    safetensors.torch.save_file(tiny_patch_entries(), str(folder / PATCH_NAME))
    safetensors.torch.save_file(sd15_like_entries(), str(folder / SD15_PATCH_NAME))
    (folder / "notes.txt").write_text("not a model")
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setenv(ldn.LAYER_MODEL_DIR_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def decoder(layer_model_dir):
    return LDPTransparentDecoderLoader().load(DECODER_NAME)[0]


# --- fake host pieces ----------------------------------------------------------------------------

class FakeModelPatcher:
    """The parts of comfy.model_patcher.ModelPatcher the patch node uses.

    ``add_patches`` keeps only keys present in ``model.state_dict()`` and records
    ``(strength_patch, patch, strength_model, offset, function)`` per key, as the host does.
    ``patched_state_dict`` applies ``("diff", (delta,))`` like ``comfy.lora.calculate_weight``:
    ``W += strength_patch * delta``.
    """

    def __init__(self, model):
        self.model = model
        self.patches = {}
        self.strengths_given = []

    def clone(self):
        twin = FakeModelPatcher(self.model)
        twin.patches = {key: list(items) for key, items in self.patches.items()}
        return twin

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        self.strengths_given.append(strength_patch)
        model_sd = self.model.state_dict()
        added = []
        for key, patch in patches.items():
            if key in model_sd:
                self.patches.setdefault(key, []).append(
                    (strength_patch, patch, strength_model, None, None))
                added.append(key)
        return added

    def patched_state_dict(self):
        out = {}
        for key, weight in self.model.state_dict().items():
            weight = weight.clone().float()
            for strength, patch, _, _, _ in self.patches.get(key, []):
                patch_type, tensors = patch
                assert patch_type == "diff" and len(tensors) == 1
                weight += strength * tensors[0].float()
            out[key] = weight
        return out


def _fake_host(monkeypatch, *, interrupt_after=None):
    """Install fake ``comfy.utils`` / ``comfy.model_management`` modules; return a record."""
    record = types.SimpleNamespace(bars=[], interrupt_calls=0)

    class ProgressBar:
        def __init__(self, total):
            self.total, self.steps = total, []
            record.bars.append(self)

        def update(self, steps):
            self.steps.append(steps)

    class Interrupted(Exception):
        pass

    def throw_exception_if_processing_interrupted():
        record.interrupt_calls += 1
        if interrupt_after is not None and record.interrupt_calls > interrupt_after:
            raise Interrupted("cancelled")

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    management = types.ModuleType("comfy.model_management")
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    management.get_torch_device = lambda: torch.device("cpu")
    comfy.utils, comfy.model_management = utils, management
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    monkeypatch.setitem(sys.modules, "comfy.model_management", management)
    record.Interrupted = Interrupted
    return record


def _inputs(batch, latent_h, latent_w, seed=0):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(batch, 4, latent_h, latent_w, generator=g)
    images = torch.rand(batch, latent_h * 8, latent_w * 8, 3, generator=g)
    return {"samples": latent}, images


# --- declarations ------------------------------------------------------------------------------

def test_node_interface_is_the_contract(layer_model_dir):
    mappings, names = ldn.NODE_CLASS_MAPPINGS, ldn.NODE_DISPLAY_NAME_MAPPINGS
    assert names == {
        "LDPLayerDiffusionPatch": "Apply Layer Diffusion (LD-Portrait)",
        "LDPTransparentDecoderLoader": "Load Transparent Decoder (LD-Portrait)",
        "LDPTransparentDecode": "Transparent Decode (LD-Portrait)",
    }
    patch = mappings["LDPLayerDiffusionPatch"].INPUT_TYPES()["required"]
    assert list(patch) == ["model", "patch_file", "strength"]
    assert patch["model"][0] == "MODEL"
    assert patch["patch_file"][0] == sorted([DECODER_NAME, SD15_PATCH_NAME, PATCH_NAME])  # no .txt
    assert patch["patch_file"][1]["default"] == PATCH_NAME
    strength = patch["strength"][1]
    assert (strength["default"], strength["min"], strength["max"], strength["step"]) == (1.0, -2.0, 2.0, 0.05)
    assert LDPLayerDiffusionPatch.RETURN_TYPES == ("MODEL",)
    assert LDPLayerDiffusionPatch.RETURN_NAMES == ("model",)

    loader = mappings["LDPTransparentDecoderLoader"].INPUT_TYPES()["required"]
    assert list(loader) == ["decoder_file"]
    assert loader["decoder_file"][1]["default"] == DECODER_NAME
    assert LDPTransparentDecoderLoader.RETURN_TYPES == ("LDP_TRANSPARENT_DECODER",)
    assert LDPTransparentDecoderLoader.RETURN_NAMES == ("decoder",)

    decode = mappings["LDPTransparentDecode"].INPUT_TYPES()["required"]
    assert list(decode) == ["samples", "images", "decoder", "passes", "sub_batch"]
    assert [decode[k][0] for k in ("samples", "images", "decoder")] == [
        "LATENT", "IMAGE", "LDP_TRANSPARENT_DECODER"]
    assert decode["passes"][0] == ["8", "4", "2", "1"] and decode["passes"][1]["default"] == "8"
    sub = decode["sub_batch"][1]
    assert (sub["default"], sub["min"], sub["max"]) == (8, 1, 64)
    assert LDPTransparentDecode.RETURN_TYPES == ("IMAGE", "MASK", "IMAGE", "IMAGE")
    assert LDPTransparentDecode.RETURN_NAMES == ("foreground", "alpha", "rgba", "preview")

    for cls in mappings.values():
        assert cls.CATEGORY == "LD-Portrait/layer diffusion"
        assert len(cls.DESCRIPTION) > 100
        for name, declaration in cls.INPUT_TYPES()["required"].items():
            assert len(declaration[1]["tooltip"]) > 15, name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        assert all(len(tip) > 15 for tip in cls.OUTPUT_TOOLTIPS)
        assert callable(getattr(cls(), cls.FUNCTION))


def test_published_names_match_the_library():
    assert ldn.DEFAULT_DECODER_FILE == ld_weights.DECODER_FILE_NAME
    # The node offers the SDXL patch files the library knows plus the SD1.5 attention file.
    assert ldn.KNOWN_PATCH_FILES == ld_weights.PATCH_FILE_NAMES + ("layer_sd15_transparent_attn.safetensors",)
    assert ldn.KNOWN_DECODER_FILES == ("vae_transparent_decoder.safetensors",
                                       "layer_sd15_vae_transparent_decoder.safetensors",
                                       "flux_vae_transparent_decoder.safetensors")


def test_without_folder_the_published_names_are_offered(monkeypatch, tmp_path):
    monkeypatch.delenv(ldn.LAYER_MODEL_DIR_ENV, raising=False)
    assert LDPLayerDiffusionPatch.INPUT_TYPES()["required"]["patch_file"][0] == list(ldn.KNOWN_PATCH_FILES)
    with pytest.raises(FileNotFoundError, match=ldn.LAYER_MODEL_DIR_ENV):
        LDPTransparentDecoderLoader().load(DECODER_NAME)
    monkeypatch.setenv(ldn.LAYER_MODEL_DIR_ENV, str(tmp_path))  # empty folder
    assert LDPTransparentDecoderLoader.INPUT_TYPES()["required"]["decoder_file"][0] == list(ldn.KNOWN_DECODER_FILES)
    assert LDPTransparentDecoderLoader.INPUT_TYPES()["required"]["decoder_file"][1]["default"] == DECODER_NAME
    with pytest.raises(FileNotFoundError, match="ld-portrait models download"):
        LDPTransparentDecoderLoader().load(DECODER_NAME)
    with pytest.raises(ValueError, match="outside"):
        ldn.resolve_layer_model("../" + DECODER_NAME)
    with pytest.raises(ValueError, match="not a .safetensors"):
        ldn.resolve_layer_model("model.ckpt")


def test_layer_model_folder_is_registered_with_the_host(monkeypatch, tmp_path):
    models = tmp_path / "models"
    (models / "layer_model" / "sub").mkdir(parents=True)
    for name in (DECODER_NAME, "sub/" + PATCH_NAME, "old.ckpt"):
        (models / "layer_model" / name).write_bytes(b"x")
    host = types.ModuleType("folder_paths")
    host.models_dir = str(models)
    host.folder_names_and_paths = {}

    def get_filename_list(folder):
        paths, extensions = host.folder_names_and_paths[folder]
        found = []
        for base in paths:
            for root, _, files in os.walk(base):
                found += [os.path.relpath(os.path.join(root, f), base).replace(os.sep, "/")
                          for f in files if os.path.splitext(f)[1] in extensions or not extensions]
        return sorted(found)

    def get_full_path(folder, name):
        for base in host.folder_names_and_paths[folder][0]:
            candidate = os.path.join(base, name)
            if os.path.isfile(candidate):
                return candidate
        return None

    host.get_filename_list = get_filename_list
    host.get_full_path = get_full_path
    host.get_folder_paths = lambda folder: list(host.folder_names_and_paths[folder][0])
    monkeypatch.setitem(sys.modules, "folder_paths", host)
    monkeypatch.setenv(ldn.LAYER_MODEL_DIR_ENV, "/nonexistent")  # ignored inside the host

    combo = LDPLayerDiffusionPatch.INPUT_TYPES()["required"]["patch_file"]
    default_folder = str(models / "layer_model")
    assert host.folder_names_and_paths["layer_model"] == ([default_folder], {".safetensors"})
    assert combo[0] == ["sub/" + PATCH_NAME, DECODER_NAME]
    assert combo[1]["default"] == "sub/" + PATCH_NAME  # the published name, in a sub-folder
    assert ldn.resolve_layer_model(DECODER_NAME) == models / "layer_model" / DECODER_NAME
    with pytest.raises(FileNotFoundError, match="layer_model folder"):
        ldn.resolve_layer_model("missing.safetensors")

    # A registration made before ours (another pack, extra_model_paths.yaml) is kept and gains
    # the default folder; files of every extension it allows are filtered to .safetensors.
    other = str(tmp_path / "elsewhere")
    host.folder_names_and_paths = {"layer_model": ([other], set())}
    names = LDPTransparentDecoderLoader.INPUT_TYPES()["required"]["decoder_file"][0]
    assert host.folder_names_and_paths["layer_model"][0] == [other, default_folder]
    assert "old.ckpt" not in names and DECODER_NAME in names


# --- decoder loader and decode -----------------------------------------------------------------

def test_loader_returns_a_typed_decoder(decoder, layer_model_dir):
    assert isinstance(decoder, TransparentDecoder)
    assert decoder.device == torch.device("cpu") and decoder.dtype == torch.float32
    assert decoder.file_name == DECODER_NAME
    assert decoder.path == str((layer_model_dir / DECODER_NAME).resolve())
    weight = decoder.network.conv_out.weight
    assert weight.dtype == torch.float32 and not weight.requires_grad
    reference = safetensors.torch.load_file(str(layer_model_dir / DECODER_NAME))["conv_out.weight"]
    assert torch.equal(weight, reference.float())


def test_loader_refuses_a_patch_file_as_decoder(layer_model_dir):
    with pytest.raises(WeightFileError, match="patch file"):
        LDPTransparentDecoderLoader().load(PATCH_NAME)


def test_decode_batch_of_two_at_a_size_that_is_not_a_multiple_of_64(decoder):
    samples, images = _inputs(batch=2, latent_h=9, latent_w=5)  # 72x40 images
    foreground, alpha, rgba, preview = LDPTransparentDecode().decode(
        samples, images, decoder, passes="2", sub_batch=8)
    assert foreground.shape == (2, 72, 40, 3) and alpha.shape == (2, 72, 40)
    assert rgba.shape == (2, 72, 40, 4) and preview.shape == (2, 72, 40, 3)
    for out in (foreground, alpha, rgba, preview):
        assert out.dtype == torch.float32 and out.device.type == "cpu" and out.is_contiguous()
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(alpha.std()) > 0  # a real network output, not a constant
    assert torch.equal(rgba[..., :3], foreground) and torch.equal(rgba[..., 3], alpha)
    assert torch.allclose(preview, checkerboard_preview(foreground, alpha))
    # Exactly the library's decode of the same inputs (channel 0 alpha, 1..3 colour).
    direct = decode_transparent(decoder.network, images.movedim(-1, 1), samples["samples"], passes=2)
    assert torch.equal(alpha, direct[:, 0]) and torch.equal(foreground, direct[:, 1:].movedim(1, -1))


@pytest.mark.parametrize("passes", ["1", "8"])
def test_one_and_eight_passes(decoder, passes):
    samples, images = _inputs(batch=1, latent_h=8, latent_w=8, seed=3)  # 64x64
    foreground, alpha, rgba, _ = LDPTransparentDecode().decode(samples, images, decoder, passes, 4)
    direct = decode_transparent(decoder.network, images.movedim(-1, 1), samples["samples"],
                                passes=int(passes))
    assert alpha.shape == (1, 64, 64) and torch.equal(alpha, direct[:, 0])
    assert torch.equal(foreground, direct[:, 1:].movedim(1, -1))


def test_mismatched_inputs_are_clear_errors(decoder):
    samples, images = _inputs(batch=2, latent_h=8, latent_w=8)
    node = LDPTransparentDecode()
    with pytest.raises(ValueError, match="2 latents but images holds 1"):
        node.decode(samples, images[:1], decoder, "1", 8)
    with pytest.raises(ValueError, match=r"images are 56x64 \(WxH\) but samples decode to 64x64"):
        node.decode(samples, images[:, :, :56], decoder, "1", 8)
    with pytest.raises(ValueError, match="16 channels"):
        node.decode({"samples": torch.zeros(2, 16, 8, 8)}, images, decoder, "1", 8)
    with pytest.raises(ValueError, match="Load Transparent Decoder"):
        node.decode(samples, images, decoder.network, "1", 8)
    with pytest.raises(ValueError, match="passes"):
        node.decode(samples, images, decoder, "3", 8)


def test_progress_per_pass_and_cancel(decoder, monkeypatch):
    record = _fake_host(monkeypatch)
    samples, images = _inputs(batch=2, latent_h=8, latent_w=8)
    LDPTransparentDecode().decode(samples, images, decoder, "2", 8)
    (bar,) = record.bars
    assert bar.total == 4 and sum(bar.steps) == 4 and len(bar.steps) == 4  # one step per pass
    assert record.interrupt_calls == 4  # checked before every network call

    record = _fake_host(monkeypatch, interrupt_after=1)
    with pytest.raises(record.Interrupted):
        LDPTransparentDecode().decode(samples, images, decoder, "2", 8)
    assert record.interrupt_calls == 2 and sum(record.bars[0].steps) == 1


class _OutOfMemoryOnce(nn.Module):
    """The decoder, but the first ``failures`` calls raise the GPU out-of-memory error."""

    def __init__(self, inner, failures):
        super().__init__()
        self.inner, self.conv_out, self.failures = inner, inner.conv_out, failures
        self.batch_sizes = []

    def forward(self, image, latent):
        if self.failures:
            self.failures -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        self.batch_sizes.append(image.shape[0])
        return self.inner(image, latent)


def test_out_of_memory_frees_memory_then_retries(decoder):
    samples, images = _inputs(batch=1, latent_h=8, latent_w=8)
    expected = LDPTransparentDecode().decode(samples, images, decoder, "2", 8)
    flaky = TransparentDecoder(_OutOfMemoryOnce(decoder.network, failures=2), decoder.device,
                               decoder.dtype, decoder.file_name, decoder.path)
    result = LDPTransparentDecode().decode(samples, images, flaky, "2", 8)
    assert all(torch.equal(a, b) for a, b in zip(result, expected))
    hopeless = TransparentDecoder(_OutOfMemoryOnce(decoder.network, failures=10**6),
                                  decoder.device, decoder.dtype, decoder.file_name, decoder.path)
    with pytest.raises(RuntimeError, match="out of GPU memory even one pass at a time"):
        LDPTransparentDecode().decode(samples, images, hopeless, "2", 8)


def test_file_fingerprint_follows_the_file(layer_model_dir):
    before = LDPLayerDiffusionPatch.IS_CHANGED(patch_file=PATCH_NAME, strength=1.0)
    assert before == LDPLayerDiffusionPatch.IS_CHANGED(patch_file=PATCH_NAME, strength=0.5)
    path = layer_model_dir / PATCH_NAME
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert LDPLayerDiffusionPatch.IS_CHANGED(patch_file=PATCH_NAME) != before
    missing = LDPTransparentDecoderLoader.IS_CHANGED(decoder_file="gone.safetensors")
    assert missing != missing  # NaN: the host re-runs the node and reports the missing file


# --- patch -------------------------------------------------------------------------------------

@pytest.mark.parametrize("strength", [1.0, 0.5, -1.25])
def test_patch_adds_diff_patches_equal_to_the_library(layer_model_dir, strength):
    model = FakeModelPatcher(tiny_sdxl_like_model())
    original = {k: v.clone() for k, v in model.model.state_dict().items()}
    (patched,) = LDPLayerDiffusionPatch().patch(model, PATCH_NAME, strength)

    assert patched is not model and model.patches == {}  # the input model stays unpatched
    assert patched.strengths_given == [strength]
    assert set(patched.patches) == {PREFIX + Q + ".weight", PREFIX + K2 + ".weight",
                                    PREFIX + CONV + ".weight", PREFIX + CONV + ".bias",
                                    PREFIX + NORM + ".weight"}
    assert all(patch[1][0] == "diff" for items in patched.patches.values() for patch in items)
    expected = apply_patches_to_state_dict(
        original, patches_from_state_dict(tiny_patch_entries(), strength, target_shapes=original))
    result = patched.patched_state_dict()
    for key in original:
        assert torch.allclose(result[key], expected[key], atol=1e-5), key
    # And by hand for one low-rank entry: W + up @ down * strength.
    entries = tiny_patch_entries()
    up, down = entries[f"{PREFIX}{Q}.weight::lora::0"], entries[f"{PREFIX}{Q}.weight::lora::1"]
    assert torch.allclose(result[PREFIX + Q + ".weight"],
                          original[PREFIX + Q + ".weight"] + up @ down * strength, atol=1e-5)


def test_patch_for_another_base_model_is_refused(layer_model_dir):
    model = FakeModelPatcher(tiny_sdxl_like_model())
    with pytest.raises(WeightFileError) as info:
        LDPLayerDiffusionPatch().patch(model, SD15_PATCH_NAME, 1.0)
    message = str(info.value)
    assert repr(SD15_PATCH_NAME) in message and "different base model" in message
    assert "do not exist in the model: diffusion_model.input_blocks.1.1" in message
    assert "model has (8,)" in message and "The connected model is SDXL." in message
    with pytest.raises(WeightFileError, match="not a Layer Diffusion patch file"):
        LDPLayerDiffusionPatch().patch(model, DECODER_NAME, 1.0)
    assert model.patches == {}


def test_strength_change_reuses_the_folded_file(layer_model_dir, monkeypatch):
    from comfyui_ld_portrait.layerdiffusion import patches as ld_patches

    reads = []
    real_read = ld_patches.read_patch_file
    monkeypatch.setattr(ld_patches, "read_patch_file", lambda path: reads.append(path) or real_read(path))
    ldn._FOLDED_CACHE.clear()
    model = FakeModelPatcher(tiny_sdxl_like_model())
    first = LDPLayerDiffusionPatch().patch(model, PATCH_NAME, 1.0)[0]
    second = LDPLayerDiffusionPatch().patch(model, PATCH_NAME, 0.5)[0]
    assert len(reads) == 1 and second.strengths_given == [0.5]
    key = PREFIX + Q + ".weight"
    assert first.patches[key][0][1][1][0] is second.patches[key][0][1][1][0]  # shared deltas
    path = layer_model_dir / PATCH_NAME
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))  # file replaced
    LDPLayerDiffusionPatch().patch(model, PATCH_NAME, 0.5)
    assert len(reads) == 2


def test_host_refusing_patches_is_reported(layer_model_dir):
    class RenamingHost(FakeModelPatcher):
        def clone(self):
            return RenamingHost(self.model)

        def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
            return list(patches)[:2]

    with pytest.raises(RuntimeError, match="accepted 2 of 5 patches"):
        LDPLayerDiffusionPatch().patch(RenamingHost(tiny_sdxl_like_model()), PATCH_NAME, 1.0)


# --- Flux and SD1.5 through the same nodes -----------------------------------------------------

FLUX_DECODER_NAME = "flux_vae_transparent_decoder.safetensors"


@pytest.fixture()
def family_dir(tmp_path, monkeypatch):
    from helpers.sd15_attention import attention_sharing_file, sd15_like_model

    safetensors.torch.save_file(random_decoder_state_dict(4, latent_channels=16),
                                str(tmp_path / FLUX_DECODER_NAME))
    _, modules = sd15_like_model()
    safetensors.torch.save_file(attention_sharing_file(modules), str(tmp_path / "layer_sd15_transparent_attn.safetensors"))
    monkeypatch.setenv(ldn.LAYER_MODEL_DIR_ENV, str(tmp_path))
    return tmp_path


def test_flux_latent_decodes_through_the_same_node(family_dir):
    (flux,) = LDPTransparentDecoderLoader().load(FLUX_DECODER_NAME)
    assert flux.network.latent_channels == 16
    g = torch.Generator().manual_seed(5)
    latent = torch.randn(1, 16, 5, 9, generator=g)  # 40x72: padded inside
    images = torch.rand(1, 40, 72, 3, generator=g)
    foreground, alpha, rgba, _ = LDPTransparentDecode().decode({"samples": latent}, images, flux, "2", 8)
    direct = decode_transparent(flux.network, images.movedim(-1, 1), latent, passes=2)
    assert alpha.shape == (1, 40, 72) and torch.equal(alpha, direct[:, 0])
    assert torch.equal(foreground, direct[:, 1:].movedim(1, -1))
    with pytest.raises(ValueError, match=r"4 channels \(an SD1.5/SDXL latent\) but "
                                         r"'flux_vae_transparent_decoder.safetensors' decodes Flux"):
        LDPTransparentDecode().decode({"samples": torch.zeros(1, 4, 5, 9)}, images, flux, "1", 8)


class ObjectPatchingModelPatcher(FakeModelPatcher):
    """Adds the host's object patches (module replacement by dotted name)."""

    def __init__(self, model):
        super().__init__(model)
        self.object_patches = {}

    def clone(self):
        twin = ObjectPatchingModelPatcher(self.model)
        twin.patches = {key: list(items) for key, items in self.patches.items()}
        twin.object_patches = dict(self.object_patches)
        return twin

    def get_model_object(self, name):
        if name in self.object_patches:
            return self.object_patches[name]
        obj = self.model
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def add_object_patch(self, name, obj):
        self.object_patches[name] = obj


def test_sd15_attention_file_patches_an_sd15_model(family_dir):
    from helpers.sd15_attention import sd15_like_model

    from comfyui_ld_portrait.layerdiffusion.attention_sharing import (
        SD15_ATTENTION_MODULES,
        TemporalResidual,
        split_attention_sharing,
    )

    model_root, modules = sd15_like_model()
    model = ObjectPatchingModelPatcher(model_root)
    (patched,) = LDPLayerDiffusionPatch().patch(model, "layer_sd15_transparent_attn.safetensors", 0.75)
    assert model.patches == {} and model.object_patches == {}  # the input model stays unpatched
    assert len(patched.patches) == 4 * 32 and patched.strengths_given == [0.75]
    assert set(patched.object_patches) == {f"diffusion_model.{p}" for p in SD15_ATTENTION_MODULES}
    wrapper = patched.object_patches["diffusion_model." + SD15_ATTENTION_MODULES[5]]
    assert isinstance(wrapper, TemporalResidual) and wrapper.scale == 0.75
    assert wrapper._wrapped[0] is modules[SD15_ATTENTION_MODULES[5]]
    # The diffs are the file's up @ down products, checked against the model.
    targets = {k: tuple(v.shape) for k, v in model_root.state_dict().items()}
    entries = safetensors.torch.load_file(str(family_dir / "layer_sd15_transparent_attn.safetensors"))
    deltas, _ = split_attention_sharing(entries, targets)
    key = f"diffusion_model.{SD15_ATTENTION_MODULES[5]}.to_v.weight"
    assert torch.allclose(patched.patches[key][0][1][1][0].float(), deltas[key])


def test_sd15_attention_file_on_an_sdxl_model_is_refused(family_dir):
    model = ObjectPatchingModelPatcher(tiny_sdxl_like_model())
    with pytest.raises(WeightFileError, match=r"does not fit this model.*SD1.5 models.*connected model is SDXL"):
        LDPLayerDiffusionPatch().patch(model, "layer_sd15_transparent_attn.safetensors", 1.0)
