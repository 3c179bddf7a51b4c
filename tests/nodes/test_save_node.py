"""LDPSaveDataset called directly (no host): layout, ids, resume, rejects, hostile names, errors."""
import errno
import json
import os

import numpy as np
import pytest
import torch

from comfyui_ld_portrait.dataset import (DatasetError, DatasetWriter, dataset_stats, decide_keep,
                                         read_manifest, verify)
from comfyui_ld_portrait.nodes import dataset as dataset_nodes
from comfyui_ld_portrait.nodes.dataset import (LDPCompositeBackground, LDPSaveDataset,
                                                     output_directory)

H, W = 40, 32


def _batch(count, seed=0):
    """(foreground IMAGE [B,H,W,3], alpha MASK [B,H,W]) with a soft-edged blob per image."""
    rng = np.random.default_rng(seed)
    fg = rng.uniform(0, 1, (count, H, W, 3)).astype(np.float32)
    alpha = np.zeros((count, H, W), np.float32)
    alpha[:, 10:36, 6:26] = 1.0
    alpha[:, 9, 6:26] = 0.5
    return torch.from_numpy(fg), torch.from_numpy(alpha)


def _verdict(*keeps):
    return json.dumps([{"keep": k, "reasons": [] if k else ["multiple_people"],
                        "messages": []} for k in keeps])


def _save(out, count=1, **kwargs):
    fg, alpha = _batch(count)
    kwargs.setdefault("dataset_name", "ds")
    return LDPSaveDataset().save(fg, alpha, output_root=str(out), **kwargs)


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- declaration --------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [LDPSaveDataset, LDPCompositeBackground])
def test_declaration_has_tooltips_and_category(cls):
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            tooltip = options.get("tooltip")
            # a sentence about the input, not a placeholder or the input's own name
            assert isinstance(tooltip, str) and tooltip.rstrip().endswith((".", ")")), name
            assert tooltip.strip().lower() != name.replace("_", " "), name
            if kind in ("INT", "FLOAT") and "default" in options:
                assert options["min"] <= options["default"] <= options["max"], name
    assert cls.CATEGORY == "LD-Portrait/dataset"
    assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
    assert callable(getattr(cls(), cls.FUNCTION))
    expected = {LDPSaveDataset: ("fg/<id>.png", "alpha/<id>.png", "meta/<id>.json",
                                 "manifest.jsonl", "rejected/"),
                LDPCompositeBackground: ("foreground * alpha + background * (1 - alpha)",)}[cls]
    for phrase in expected:  # the description states the layout / formula the node implements
        assert phrase in cls.DESCRIPTION, phrase
    assert set(dataset_nodes.NODE_CLASS_MAPPINGS) == {"LDPSaveDataset", "LDPCompositeBackground"}


def test_save_node_is_an_output_node_with_wired_text_sockets():
    assert LDPSaveDataset.OUTPUT_NODE is True
    optional = LDPSaveDataset.INPUT_TYPES()["optional"]
    for name in ("prompt", "negative", "attributes", "verdict", "stats", "seed"):
        assert optional[name][1].get("forceInput") is True, name


# --- layout and meta ----------------------------------------------------------------------

def test_writes_the_layout_meta_manifest_and_ui_result(tmp_path):
    fg, alpha = _batch(2)
    raw = alpha.clone()
    raw[:, 20, 15] = 0.3  # speckle the refinement removed
    error_map = torch.zeros((2, H, 2 * W, 3))
    stats = json.dumps([{"changed_fraction": 0.01, "changed_pixels": 3},
                        {"changed_fraction": 0.02, "changed_pixels": 6}])
    result = LDPSaveDataset().save(
        fg, alpha, dataset_name="ld_portrait_20k", sample_index=7, raw_alpha=raw,
        error_map=error_map, prompt="a portrait photo", negative="blurry",
        attributes=json.dumps({"hair_color": "red", "glasses": None}), seed=1234,
        verdict=_verdict(True, True), stats=stats,
        models='{"checkpoint": "sd_xl_base_1.0.safetensors"}', output_root=str(tmp_path))
    root = tmp_path / "ld_portrait_20k"
    assert _files(tmp_path) == sorted(
        f"ld_portrait_20k/{p}" for p in (
            ".lock", "manifest.jsonl",
            *(f"{kind}/{i}.{ext}" for i in ("000007", "000008")
              for kind, ext in (("fg", "png"), ("alpha", "png"), ("raw_alpha", "png"),
                                ("error_maps", "png"), ("meta", "json")))))
    meta = json.loads((root / "meta/000008.json").read_text())
    assert meta["prompt"] == "a portrait photo" and meta["negative"] == "blurry"
    assert meta["seed"] == 1234 and meta["attributes"] == {"hair_color": "red", "glasses": None}
    assert meta["models"] == {"checkpoint": "sd_xl_base_1.0.safetensors"}
    assert meta["refinement"]["changed_pixels"] == 6  # the second image's own statistics
    assert meta["verdict"]["keep"] is True and meta["status"] == "accepted"
    assert (meta["sample_index"], meta["batch_index"], meta["batch_size"]) == (8, 1, 2)
    assert (meta["width"], meta["height"]) == (W, H)
    manifest = read_manifest(root)
    assert [e["id"] for e in manifest] == ["000007", "000008"]
    assert manifest[0]["attributes"]["hair_color"] == "red" and manifest[0]["seed"] == 1234
    assert verify(root).ok
    summary = result["result"][0]
    assert "2 written" in summary and "000007: accepted" in summary
    images = result["ui"]["images"]
    assert {"filename": "000008.png", "subfolder": "ld_portrait_20k/alpha", "type": "output"} in images
    assert len(images) == 4  # fg and alpha of both samples
    for entry in images:  # every UI path points at a real file under the output folder
        assert (tmp_path / entry["subfolder"] / entry["filename"]).is_file()


def test_stored_pixels_match_the_inputs(tmp_path):
    from comfyui_ld_portrait.dataset import load_sample

    fg, alpha = _batch(1, seed=3)
    LDPSaveDataset().save(fg, alpha, dataset_name="ds", alpha_bits="16", output_root=str(tmp_path))
    sample = load_sample(tmp_path / "ds", "000000")
    assert np.abs(sample.fg - fg[0].numpy()).max() <= 0.5 / 255 + 1e-6
    assert np.abs(sample.alpha - alpha[0].numpy()).max() <= 0.5 / 65535 + 1e-7
    assert sample.meta["alpha_bits"] == 16


def test_invert_accepts_core_masks(tmp_path):
    from comfyui_ld_portrait.dataset import load_sample

    fg, alpha = _batch(1)
    LDPSaveDataset().save(fg, 1.0 - alpha, dataset_name="ds", invert=True,
                          output_root=str(tmp_path))
    assert np.allclose(load_sample(tmp_path / "ds", "000000").alpha, alpha[0].numpy(), atol=1 / 255)


# --- ids and resume -----------------------------------------------------------------------

def test_batch_ids_follow_the_sample_index(tmp_path):
    _save(tmp_path, count=3, sample_index=41)
    assert [e["id"] for e in read_manifest(tmp_path / "ds")] == ["000041", "000042", "000043"]
    _save(tmp_path, count=1, sample_index=1234567)
    assert (tmp_path / "ds/meta/1234567.json").is_file()  # more digits when needed


def test_rerun_skips_complete_ids_and_writes_only_the_rest(tmp_path):
    _save(tmp_path, count=1, sample_index=0, prompt="first")
    root = tmp_path / "ds"
    before = (root / "fg/000000.png").read_bytes(), (root / "meta/000000.json").read_bytes()
    result = _save(tmp_path, count=3, sample_index=0, prompt="second")
    summary = result["result"][0]
    assert "000000: skipped (already complete, accepted)" in summary
    assert "2 written, 1 skipped" in summary
    assert ((root / "fg/000000.png").read_bytes(), (root / "meta/000000.json").read_bytes()) == before
    assert [e["id"] for e in read_manifest(root)] == ["000000", "000001", "000002"]
    again = _save(tmp_path, count=3, sample_index=0)
    assert "0 written, 3 skipped" in again["result"][0]
    assert len(read_manifest(root)) == 3 and verify(root).ok
    assert len(again["ui"]["images"]) == 6  # the editor still shows what the dataset holds


# --- keep / rejected ----------------------------------------------------------------------

def test_keep_false_records_meta_only_unless_keep_rejected(tmp_path):
    _save(tmp_path, sample_index=0, keep=False, keep_rejected=False, prompt="p")
    root = tmp_path / "ds"
    assert (root / "rejected/meta/000000.json").is_file()
    assert not (root / "rejected/fg").exists() and not (root / "fg").exists()
    meta = json.loads((root / "rejected/meta/000000.json").read_text())
    assert meta["status"] == "rejected" and meta["files"] == {}
    assert meta["rejected_by"] == "keep_input_false" and meta["prompt"] == "p"
    _save(tmp_path, sample_index=1, keep=False, keep_rejected=True)
    assert (root / "rejected/fg/000001.png").is_file() and (root / "rejected/alpha/000001.png").is_file()
    assert read_manifest(root) == []
    assert verify(root).ok and verify(root).rejected == 2
    # A rejected id is complete: a re-run with keep=True does not move it.
    summary = _save(tmp_path, sample_index=1, keep=True)["result"][0]
    assert "skipped (already complete, rejected)" in summary


def test_per_image_verdicts_decide_within_a_batch(tmp_path):
    # The gate's batch keep is False because image 1 failed; image 0 must still be accepted.
    summary = _save(tmp_path, count=2, keep=False, keep_rejected=True,
                    verdict=_verdict(True, False))["result"][0]
    root = tmp_path / "ds"
    assert "000000: accepted" in summary and "000001: rejected, images kept: multiple_people" in summary
    assert [e["id"] for e in read_manifest(root)] == ["000000"]
    meta = json.loads((root / "rejected/meta/000001.json").read_text())
    assert meta["rejected_by"] == "verdict" and meta["verdict"]["reasons"] == ["multiple_people"]
    stats = dataset_stats(root)
    assert stats.reject_reasons == {"multiple_people": 1}


def test_decide_keep_rules():
    keep, reject = {"keep": True}, {"keep": False}
    assert decide_keep(True, [keep, reject]) == [True, False]
    assert decide_keep(False, [keep, reject]) == [True, False]   # gate flag: per image
    assert decide_keep(False, [keep, keep]) == [False, False]    # deliberate switch: veto
    assert decide_keep(True, [None, None]) == [True, True]
    assert decide_keep(False, [None]) == [False]


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "/abs/x", "a\x00b", "x" * 300, "a/b", "a\\b", "..", "",
                                  "C:x", ".hidden", "con"])
def test_hostile_dataset_names_are_refused_and_nothing_is_written(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="dataset name"):
        _save(out, dataset_name=name)
    assert _files(tmp_path) == [] and list(out.iterdir()) == []


def test_symlinked_dataset_folder_pointing_outside_is_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "ds")
    with pytest.raises(DatasetError, match="outside the output folder"):
        _save(out)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("{hair: red}", "not valid JSON"),
    ("hair_color=red", "not valid JSON"),
    ('["red"]', "must be a JSON object"),
])
def test_bad_attributes_json_is_a_clear_error_before_writing(tmp_path, text, message):
    with pytest.raises(ValueError, match=message) as caught:
        _save(tmp_path, attributes=text)
    assert "attributes" in str(caught.value)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("bits", ["12", "eight", 0])
def test_bad_alpha_bits_is_a_clear_error_before_writing(tmp_path, bits):
    with pytest.raises(ValueError, match="alpha_bits must be 8 or 16"):
        _save(tmp_path, alpha_bits=bits)
    assert not (tmp_path / "ds").exists()


def test_verdict_for_another_batch_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        _save(tmp_path, count=2, verdict=_verdict(True, True, True))
    assert not (tmp_path / "ds").exists()


def test_unwritable_root_is_a_clear_error(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(DatasetError, match="not a folder"):
        _save(blocker)
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "ds").write_text("a file where the dataset folder should be")
    with pytest.raises(DatasetError, match="cannot use .* as a dataset folder"):
        _save(tmp_path / "out2")
    assert (tmp_path / "out2" / "ds").read_text().startswith("a file")


def test_disk_full_mid_batch_keeps_what_was_written(tmp_path, monkeypatch):
    real_stage = DatasetWriter._stage
    calls = {"n": 0}

    def full_disk(self, folder, name, payload):
        calls["n"] += 1
        if calls["n"] == 4:  # the second sample's first file (fg, alpha, meta per sample)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(self, folder, name, payload)

    monkeypatch.setattr(DatasetWriter, "_stage", full_disk)
    with pytest.raises(DatasetError) as caught:
        _save(tmp_path, count=3)
    message = str(caught.value)
    assert "000001" in message and "disk full" in message and "000000 were written" in message
    root = tmp_path / "ds"
    report = verify(root)
    assert report.ok and report.accepted == 1
    assert not any(".tmp-" in name for name in _files(root))
    monkeypatch.undo()
    assert "2 written, 1 skipped" in _save(tmp_path, count=3)["result"][0]
    assert verify(root).accepted == 3


def test_output_folder_from_env_or_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LDP_OUTPUT_DIR", str(tmp_path / "env_out"))
    assert output_directory() == tmp_path / "env_out"
    assert output_directory(tmp_path / "override") == tmp_path / "override"
    fg, alpha = _batch(1)
    LDPSaveDataset().save(fg, alpha, dataset_name="from_env")
    assert (tmp_path / "env_out/from_env/meta/000000.json").is_file()
    monkeypatch.delenv("LDP_OUTPUT_DIR")
    with pytest.raises(ValueError, match="LDP_OUTPUT_DIR"):
        output_directory()


def test_deeply_nested_attributes_are_a_clear_error_before_writing(tmp_path):
    depth = 5000  # json.loads alone would raise RecursionError
    text = '{"a": ' * depth + "1" + "}" * depth
    with pytest.raises(ValueError, match="attributes is nested more than 32 levels"):
        _save(tmp_path, attributes=text)
    assert not (tmp_path / "ds").exists()
