"""ComfyUI nodes called directly, without the host: declarations, tensors, batches, files."""
import json
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest
import torch

from comfyui_ld_portrait.dataset.imagefiles import read_rgba, write_png_atomic
from comfyui_ld_portrait.nodes.files import LDPLoadRGBA
from comfyui_ld_portrait.nodes.matte import LDPConnectivityRefine, LDPPadForeground, LDPQualityGate

SIZE = 256


def _bust_alpha(cx=SIZE // 2, speckle=False, seed=0) -> np.ndarray:
    """Soft-edged head and shoulders leaving the frame at the bottom; optional LD-like speckle."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, (cx, 82), 42, 1, -1)
    cv2.ellipse(mask, (cx, SIZE), (97, 148), 0, 0, 360, 1, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)
    if speckle:
        rng = np.random.default_rng(seed)
        ys, xs = rng.integers(170, 240, 60), rng.integers(100, 156, 60)
        alpha[ys, xs] = rng.uniform(0.2, 0.8, 60).astype(np.float32)  # semi speckle in the body
        alpha[90, 110] = 0.0  # a pinhole (eye highlight)
    return alpha


def _colour(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (SIZE, SIZE, 3)).astype(np.float32)


def _image_batch(*frames):
    return torch.from_numpy(np.stack(frames))


def _mask_batch(*frames):
    return torch.from_numpy(np.stack(frames).astype(np.float32))


# --- declarations -------------------------------------------------------------------------

def test_alpha_sockets_say_one_is_opaque_and_offer_invert():
    for cls in (LDPPadForeground, LDPConnectivityRefine, LDPQualityGate):
        spec = cls.INPUT_TYPES()
        assert spec["required"]["alpha"][0] == "MASK"
        assert "1 = opaque" in spec["required"]["alpha"][1]["tooltip"]
        assert spec["optional"]["invert"][0] == "BOOLEAN"


def test_importing_the_pack_loads_neither_torch_nor_the_host():
    code = ("import sys, comfyui_ld_portrait as p; assert len(p.NODE_CLASS_MAPPINGS) >= 4; "
            "print(sorted(m for m in ('torch', 'comfy', 'folder_paths', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_widget_defaults_mirror_the_library():
    from comfyui_ld_portrait.refine.connectivity import RefineParams
    from comfyui_ld_portrait.refine.quality import DEFAULT_THRESHOLDS

    refine_widgets = LDPConnectivityRefine.INPUT_TYPES()["optional"]
    library = RefineParams()
    exposed = [name for name in refine_widgets if name not in ("image", "invert")]
    assert len(exposed) >= 10
    for name in exposed:
        default = getattr(library, name)  # AttributeError = a widget the library lacks
        options = refine_widgets[name][1]
        assert options["default"] == (0 if default is None else default), name
        if refine_widgets[name][0] == "FLOAT":  # the frontend would round it to the step
            steps = round(options["default"] / options["step"])
            on_step = abs(steps * options["step"] - options["default"]) < 1e-9
            assert on_step or options.get("round") is False, name
    gate_widgets = LDPQualityGate.INPUT_TYPES()["optional"]
    for name, default in DEFAULT_THRESHOLDS.items():
        assert gate_widgets[name][1]["default"] == default, name
        assert gate_widgets[name][0] == ("INT" if isinstance(default, int) else "FLOAT")


# --- pad foreground -----------------------------------------------------------------------

def test_pad_foreground_batch_and_invert():
    from comfyui_ld_portrait.base.padding import pad_foreground

    alphas = [_bust_alpha(), _bust_alpha(cx=100)]
    colours = [_colour(0), _colour(1)]
    node = LDPPadForeground()
    (padded,) = node.pad(_image_batch(*colours), _mask_batch(*alphas))
    assert padded.shape == (2, SIZE, SIZE, 3) and padded.dtype == torch.float32
    for index in range(2):
        expected = pad_foreground(colours[index], alphas[index])
        np.testing.assert_allclose(padded[index].numpy(), expected, atol=1e-6)
        opaque = alphas[index] >= 1.0
        np.testing.assert_allclose(padded[index].numpy()[opaque], colours[index][opaque], atol=1e-6)
    assert not np.allclose(padded[0].numpy(), padded[1].numpy())
    (inverted,) = node.pad(_image_batch(*colours), 1.0 - _mask_batch(*alphas), invert=True)
    np.testing.assert_allclose(inverted.numpy(), padded.numpy(), atol=1e-5)


def test_pad_foreground_accepts_rgba_and_broadcasts_one_mask():
    rgba = np.concatenate([_colour(), _bust_alpha()[..., None]], axis=2)
    (padded,) = LDPPadForeground().pad(_image_batch(rgba, rgba), _mask_batch(_bust_alpha()))
    assert padded.shape == (2, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="batch"):
        LDPPadForeground().pad(_image_batch(rgba, rgba), _mask_batch(*[_bust_alpha()] * 3))
    with pytest.raises(ValueError, match="same size|width x height"):
        LDPPadForeground().pad(_image_batch(_colour()), _mask_batch(np.ones((64, 64), np.float32)))


# --- connectivity refine ------------------------------------------------------------------

def test_connectivity_refine_batch_outputs():
    from comfyui_ld_portrait.refine.connectivity import refine_alpha

    alphas = [_bust_alpha(speckle=True, seed=1), _bust_alpha(speckle=True, seed=2)]
    node = LDPConnectivityRefine()
    colours = _image_batch(_colour(), _colour(1))
    refined, changed, error_map, stats, uncertain = node.refine(_mask_batch(*alphas), image=colours)
    assert refined.shape == changed.shape == uncertain.shape == (2, SIZE, SIZE)
    assert error_map.shape == (2, SIZE, SIZE, 3)
    assert refined.dtype == changed.dtype == error_map.dtype == uncertain.dtype == torch.float32
    assert set(np.unique(changed.numpy())) <= {0.0, 1.0}
    records = json.loads(stats)
    assert isinstance(records, list) and len(records) == 2
    for index in range(2):
        expected = refine_alpha(alphas[index])
        np.testing.assert_array_equal(refined[index].numpy(), expected.alpha)
        np.testing.assert_array_equal(changed[index].numpy() > 0.5, expected.changed)
        assert records[index]["changed_pixels"] == int(expected.changed.sum()) > 0
        # The error map marks exactly the changed pixels in pure red.
        red = np.all(error_map[index].numpy() == (1.0, 0.0, 0.0), axis=-1)
        assert red[expected.changed].all()
    assert refined.min() >= 0 and refined.max() <= 1


def test_connectivity_refine_invert_widgets_and_no_image():
    alpha = _bust_alpha(speckle=True)
    node = LDPConnectivityRefine()
    plain = node.refine(_mask_batch(alpha))
    inverted = node.refine(_mask_batch(1.0 - alpha), invert=True)
    np.testing.assert_allclose(inverted[0].numpy(), plain[0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(inverted[1].numpy(), plain[1].numpy())
    assert plain[2].shape == (1, SIZE, SIZE, 3)  # an error map even without colour
    # Widgets reach the library: 0 means "automatic", a switch turns a repair off.
    auto = node.refine(_mask_batch(alpha), reach=0.0, hole_min_area=0)
    np.testing.assert_array_equal(auto[0].numpy(), plain[0].numpy())
    assert json.loads(auto[3])[0]["params"]["reach"] > 0
    off = node.refine(_mask_batch(alpha), fix_interior=False, fix_pinholes=False)
    assert off[1].sum() < plain[1].sum()
    assert json.loads(off[3])[0]["interior_fixed"] == 0


# --- quality gate -------------------------------------------------------------------------

def test_quality_gate_batch_verdicts():
    good, empty = _bust_alpha(), np.zeros((SIZE, SIZE), np.float32)
    keep, kept, reasons, verdict = LDPQualityGate().judge(_mask_batch(good, empty))
    assert keep is False and kept == 1
    lines = reasons.splitlines()
    assert lines[0] == "0: keep" and lines[1].startswith("1: reject: empty_matte")
    records = json.loads(verdict)
    assert [record["keep"] for record in records] == [True, False]
    assert records[1]["reasons"] == ["empty_matte"]
    assert records[0]["measures"]["person_count"] == 1
    keep, kept, _, _ = LDPQualityGate().judge(_mask_batch(good, good))
    assert keep is True and kept == 2


def test_quality_gate_raw_alpha_changed_invert_and_thresholds():
    refined = _bust_alpha()
    binary_raw = (refined >= 0.5).astype(np.float32)
    gate = LDPQualityGate()
    _, _, _, verdict = gate.judge(_mask_batch(refined), raw_alpha=_mask_batch(binary_raw))
    assert json.loads(verdict)[0]["reasons"] == ["nearly_binary"]
    keep, _, _, _ = gate.judge(_mask_batch(1 - refined), raw_alpha=_mask_batch(1 - refined), invert=True)
    assert keep is True
    changed = _mask_batch(refined >= 0.5)  # everything in the foreground "corrected"
    keep, _, reasons, verdict = gate.judge(_mask_batch(refined), changed=changed)
    assert keep is False and "too_many_corrections" in reasons
    assert json.loads(verdict)[0]["measures"]["changed_fraction"] == pytest.approx(1.0)
    keep, _, _, verdict = gate.judge(_mask_batch(refined), changed=changed, max_changed_fraction=2.0)
    assert keep is True and json.loads(verdict)[0]["thresholds"]["max_changed_fraction"] == 2.0


def test_refine_then_gate_on_a_real_portrait(layerdiffuse_dir):
    image, alpha, _, _, _ = LDPLoadRGBA().load(str(layerdiffuse_dir / "i2i_0_transparent.png"), 0)
    refined, changed, _, _, uncertain = LDPConnectivityRefine().refine(alpha, image=image)
    keep, kept, reasons, _ = LDPQualityGate().judge(refined, raw_alpha=alpha, changed=changed,
                                                    uncertain=uncertain)
    assert keep is True and kept == 1, reasons


# --- loader -------------------------------------------------------------------------------

def test_load_rgba_real_file(layerdiffuse_dir):
    path = layerdiffuse_dir / "i2i_0_transparent.png"
    image, alpha, rgba, name, count = LDPLoadRGBA().load(str(path), 5)  # index ignored for a file
    rgb_ref, alpha_ref = read_rgba(path)
    assert image.shape == (1, 1024, 1024, 3) and alpha.shape == (1, 1024, 1024)
    assert rgba.shape == (1, 1024, 1024, 4)
    assert image.dtype == alpha.dtype == rgba.dtype == torch.float32
    np.testing.assert_array_equal(alpha[0].numpy(), alpha_ref)  # 1 = opaque, not inverted
    np.testing.assert_array_equal(rgba[0, ..., :3].numpy(), rgb_ref)
    np.testing.assert_array_equal(rgba[0, ..., 3].numpy(), alpha_ref)
    assert name == "i2i_0_transparent.png" and count == 1


def test_load_rgba_folder_index_wrap_and_non_rgba(layerdiffuse_dir):
    pngs = sorted(p.name for p in layerdiffuse_dir.iterdir() if p.suffix == ".png")
    node = LDPLoadRGBA()
    folder = str(layerdiffuse_dir)
    position = pngs.index("pad_ip.png")
    _, alpha, _, name, count = node.load(folder, position)
    assert name == "pad_ip.png" and count == len(pngs) and alpha.shape == (1, 512, 512)
    _, _, _, wrapped, _ = node.load(folder, position + len(pngs))
    assert wrapped == "pad_ip.png"
    with pytest.raises(ValueError, match="out of range"):
        node.load(folder, len(pngs), out_of_range="error")
    # padded_rgb.png is RGB only: the error names the file.
    with pytest.raises(ValueError, match="padded_rgb.png.*RGBA"):
        node.load(folder, pngs.index("padded_rgb.png"))


def _write_rgba(path, seed=0, size=32):
    rng = np.random.default_rng(seed)
    write_png_atomic(path, rng.uniform(0, 1, (size, size, 4)).astype(np.float32))


def test_load_rgba_errors_and_relative_paths(tmp_path, monkeypatch):
    node = LDPLoadRGBA()
    with pytest.raises(ValueError, match="empty"):
        node.load("  ", 0)
    with pytest.raises(ValueError, match="no such file or folder"):
        node.load(str(tmp_path / "missing.png"), 0)
    with pytest.raises(ValueError, match="no PNG files"):
        node.load(str(tmp_path), 0)
    gray = tmp_path / "gray.png"
    write_png_atomic(gray, np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="gray.png"):
        node.load(str(gray), 0)
    # Without the host, relative paths resolve against the current folder ...
    sub = tmp_path / "portraits"
    _write_rgba(sub / "b.png", 1)
    _write_rgba(sub / "a.png", 0)
    monkeypatch.chdir(tmp_path)
    assert node.load("portraits", 0)[3] == "a.png"
    assert node.load('"portraits/b.png"', 0)[3] == "b.png"
    # ... and with the host, against ComfyUI's input folder.
    host_input = tmp_path / "comfy_input"
    _write_rgba(host_input / "portraits" / "c.png", 2)
    fake = types.ModuleType("folder_paths")
    fake.get_input_directory = lambda: str(host_input)
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    assert node.load("portraits", 0)[3] == "c.png"


def test_load_rgba_is_changed_follows_the_file(tmp_path):
    path = tmp_path / "x.png"
    _write_rgba(path, 0)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    first = LDPLoadRGBA.IS_CHANGED(str(path), 0)
    assert first == LDPLoadRGBA.IS_CHANGED(str(path), 0)
    _write_rgba(path, 1)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    assert LDPLoadRGBA.IS_CHANGED(str(path), 0) != first
    _write_rgba(tmp_path / "y.png", 2)
    assert LDPLoadRGBA.IS_CHANGED(str(tmp_path), 1) != LDPLoadRGBA.IS_CHANGED(str(tmp_path), 0)
    missing = LDPLoadRGBA.IS_CHANGED(str(tmp_path / "nope.png"), 0)
    assert missing != missing  # NaN: the host always re-runs and reports the error


# --- host services ------------------------------------------------------------------------

def test_progress_and_interrupt_use_the_host_when_present(monkeypatch):
    updates = []

    class ProgressBar:
        def __init__(self, total):
            updates.append(("total", total))

        def update(self, steps):
            updates.append(("step", steps))

    class Interrupted(Exception):
        pass

    interrupted = {"now": False}

    def throw_exception_if_processing_interrupted():
        if interrupted["now"]:
            raise Interrupted()

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    management = types.ModuleType("comfy.model_management")
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    comfy.utils, comfy.model_management = utils, management
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    monkeypatch.setitem(sys.modules, "comfy.model_management", management)

    alphas = _mask_batch(_bust_alpha(), _bust_alpha(cx=100))
    LDPConnectivityRefine().refine(alphas)
    assert updates == [("total", 2), ("step", 1), ("step", 1)]
    interrupted["now"] = True
    with pytest.raises(Interrupted):
        LDPPadForeground().pad(_image_batch(_colour(), _colour()), alphas)


def test_loader_is_changed_with_a_linked_index(tmp_path):
    # The host calls IS_CHANGED with constant inputs only: a linked index arrives as None.
    import math

    import numpy as np

    from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
    from comfyui_ld_portrait.nodes.files import LDPLoadRGBA

    for name in ("a.png", "b.png"):
        write_png_atomic(tmp_path / name, np.zeros((4, 4, 4), np.float32))
    first = LDPLoadRGBA.IS_CHANGED(str(tmp_path), None)
    assert first == LDPLoadRGBA.IS_CHANGED(str(tmp_path), None)
    write_png_atomic(tmp_path / "c.png", np.zeros((4, 4, 4), np.float32))
    assert LDPLoadRGBA.IS_CHANGED(str(tmp_path), None) != first
    assert math.isnan(LDPLoadRGBA.IS_CHANGED(None, 0))
    assert math.isnan(LDPLoadRGBA.IS_CHANGED(str(tmp_path / "missing"), None))


def test_alpha_and_invert_tooltips_are_shared_by_the_node_modules():
    from comfyui_ld_portrait.nodes import _schema, dataset as dataset_nodes, matte

    for module in (matte, dataset_nodes):
        tooltips = {section[name][1]["tooltip"]
                    for cls in module.NODE_CLASS_MAPPINGS.values()
                    for section in cls.INPUT_TYPES().values()
                    for name in ("alpha", "invert") if name in section}
        assert {_schema.ALPHA_TOOLTIP, _schema.INVERT_TOOLTIP} <= tooltips, module.__name__
        assert not hasattr(module, "_ALPHA_TOOLTIP") and not hasattr(module, "_INVERT_TOOLTIP")


def test_image_and_mask_tensors_stack_as_float32():
    from comfyui_ld_portrait.nodes._common import image_tensor, mask_tensor

    image = image_tensor([np.zeros((2, 3, 3), np.uint8), np.ones((2, 3, 3), np.float64)])
    mask = mask_tensor([np.ones((2, 3), bool)])
    assert tuple(image.shape) == (2, 2, 3, 3) and str(image.dtype) == "torch.float32"
    assert tuple(mask.shape) == (1, 2, 3) and str(mask.dtype) == "torch.float32"
    assert float(mask.sum()) == 6.0 and float(image[1].mean()) == 1.0
