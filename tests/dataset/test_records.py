"""The record -> meta -> keep/reject path (save_record, save_batch) and the JSON inputs."""
from __future__ import annotations

import dataclasses
import errno
import json

import numpy as np
import pytest

from comfyui_ld_portrait.dataset import (BatchInput, DatasetError, DatasetWriter,
                                         KEEP_INPUT_REASON, SampleRecord, SavePolicy,
                                         batch_records, common_meta, decide_keep, is_disk_full,
                                         load_sample, models_value, parse_json_input, per_image,
                                         record_meta, save_batch, save_record)
from helpers.dataset_samples import all_files, make_sample


def test_is_disk_full_knows_enospc_and_edquot_only():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    if hasattr(errno, "EDQUOT"):
        assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(OSError("no errno"))
    assert not is_disk_full(ValueError(errno.ENOSPC))


def test_decide_keep_per_image_and_json_inputs():
    keep, reject = {"keep": True}, {"keep": False, "reasons": ["blurry"]}
    assert decide_keep(False, [keep, reject, None]) == [True, False, False]
    assert decide_keep(False, [keep, None]) == [False, False]  # deliberate switch: veto
    assert per_image([1, 2], 2, "stats") == [1, 2]
    assert per_image([7], 3, "stats") == [7, 7, 7]
    assert per_image({"a": 1}, 2, "stats") == [{"a": 1}, {"a": 1}]
    with pytest.raises(ValueError, match="stats holds 2 entries but the batch has 3"):
        per_image([1, 2], 3, "stats")
    assert parse_json_input("  ", "verdict", empty="E") == "E"
    assert parse_json_input('{"a": 1}', "attributes", kinds=(dict,)) == {"a": 1}
    with pytest.raises(ValueError, match="attributes must be a JSON object, got list"):
        parse_json_input("[1]", "attributes", kinds=(dict,))
    with pytest.raises(ValueError, match="verdict is not valid JSON"):
        parse_json_input("{oops", "verdict")
    assert models_value(' {"ckpt": "x"} ') == {"ckpt": "x"}
    assert models_value(" sdxl base ") == "sdxl base" and models_value("") is None
    assert common_meta(prompt="p", seed=np.int64(3), models=None) == {"prompt": "p", "seed": 3}


def _batch(ids, samples, decisions, **kwargs):
    return batch_records(BatchInput(ids, [s[0] for s in samples], [s[1] for s in samples],
                                    decisions, **kwargs))


def test_save_batch_writes_decides_and_skips(tmp_path):
    writer = DatasetWriter(tmp_path)
    samples = [make_sample(seed) for seed in range(3)]
    verdicts = [{"keep": True}, {"keep": False, "reasons": ["multiple_people"]}, None]
    calls = []
    records = _batch(["a", "b", "c"], samples, decide_keep(False, verdicts),
                     raw_alphas=[s[2] for s in samples], verdicts=verdicts,
                     refinements=[{"changed_pixels": 1}, None, None], common={"prompt": "p"},
                     first_index=10)
    outcomes = save_batch(writer, records, SavePolicy(),
                          before_each=lambda: calls.append("before"),
                          after_each=lambda outcome: calls.append(outcome.sample_id))
    assert calls == ["before", "a", "before", "b", "before", "c"]
    assert [(o.action, o.line) for o in outcomes] == [
        ("accepted", "a: accepted"),
        ("rejected_meta", "b: rejected, meta only: multiple_people"),
        ("rejected_meta", "c: rejected, meta only")]
    assert all(o.written for o in outcomes)
    meta_a = load_sample(tmp_path, "a").meta
    assert (meta_a["sample_index"], meta_a["batch_index"], meta_a["batch_size"]) == (10, 0, 3)
    assert meta_a["refinement"] == {"changed_pixels": 1} and meta_a["prompt"] == "p"
    assert "raw_alpha" in meta_a["files"] and "rejected_by" not in meta_a
    b, c = load_sample(tmp_path, "b"), load_sample(tmp_path, "c")
    assert b.meta["rejected_by"] == "verdict" and c.meta["rejected_by"] == KEEP_INPUT_REASON
    assert b.fg is None and b.meta["files"] == {}
    again = save_batch(writer, _batch(["a", "d"], samples[:2], [True, False]),
                       SavePolicy(keep_rejected=True))
    assert [(o.action, o.written) for o in again] == [("skipped", False),
                                                     ("rejected_images", True)]
    assert again[0].line == "a: skipped (already complete, accepted)"
    np.testing.assert_allclose(load_sample(tmp_path, "d").fg, samples[1][0], atol=0.51 / 255)
    with pytest.raises(ValueError, match="one length"):
        _batch(["e"], samples, [True])


def test_save_batch_turns_a_full_disk_into_a_dataset_error(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    sample = make_sample(0)
    real_stage = DatasetWriter._stage

    def stage(self, folder, name, payload):
        if name.startswith("y"):
            raise OSError(errno.EDQUOT if hasattr(errno, "EDQUOT") else errno.ENOSPC, "quota")
        return real_stage(self, folder, name, payload)

    monkeypatch.setattr(DatasetWriter, "_stage", stage)
    with pytest.raises(DatasetError, match=r"cannot write sample y .*\(disk full\?\).* Samples x "
                                           "were written completely"):
        save_batch(writer, _batch(["x", "y"], [sample, sample], [True, True]))
    assert writer.status("x") == "accepted" and writer.status("y") is None


# ---- one record path for the node and `ld-portrait refine` -----------------------------------


def _stored_meta(root, relative):
    meta = json.loads((root / relative).read_text())
    meta.pop("written")
    return meta


def test_record_meta_orders_caller_keys_then_refinement_verdict_rejected_by_trailing():
    fg, alpha, _ = make_sample(0)
    record = SampleRecord("s", fg, alpha, accepted=False, meta={"source_file": "s.png", "b": 1},
                          refinement={"changed_pixels": 3}, verdict={"keep": False},
                          rejected_by="verdict", trailing_meta={"seed": 7, "b": 2})
    meta = record_meta(record)
    assert list(meta) == ["source_file", "b", "refinement", "verdict", "rejected_by", "seed"]
    assert meta["b"] == 2  # trailing keys win, as the demo's extra meta did in refine_folder
    accepted = dataclasses.replace(record, accepted=True)
    assert "rejected_by" not in record_meta(accepted)
    assert "rejected_by" not in record_meta(dataclasses.replace(record, rejected_by=None))


def test_save_record_writes_what_refine_folder_wrote_by_hand(tmp_path):
    """The record path gives the meta and files that refine_folder's own write_sample call
    gave before it switched to records (the layout the lead's before/after check compares)."""
    fg, alpha, raw = make_sample(1)
    error_map = np.zeros((24, 40, 3), np.float32)
    verdict = {"keep": False, "reasons": ["too_small"], "measures": {"side": 24}}
    meta = {"source_file": "p.png", "source_sha256": "ab", "source_bytes": 3,
            "tool": {"name": "ld-portrait", "command": "refine"},
            "padding": {"method": "layerdiffuse_pyramid", "alpha": "refined"}}
    stats = {"changed_pixels": 5}
    extra = {"seed": 4, "attributes": {"pose": "front"}}
    by_hand = DatasetWriter(tmp_path / "hand")
    by_hand.write_sample("p", fg, alpha, meta={**meta, "refinement": stats, "verdict": verdict,
                                               **extra},
                         raw_alpha=None, error_map=None, rejected=True, store_images=False)
    by_record = DatasetWriter(tmp_path / "record")
    outcome = save_record(by_record, SampleRecord(
        "p", fg, alpha, accepted=False, meta=meta, refinement=stats, verdict=verdict,
        raw_alpha=raw, error_map=error_map, trailing_meta=extra), SavePolicy(store_raw_alpha=True))
    assert outcome.action == "rejected_meta" and outcome.rejected and not outcome.accepted
    assert outcome.line == "p: rejected, meta only: too_small"
    hand = _stored_meta(by_hand.root, "rejected/meta/p.json")
    record = _stored_meta(by_record.root, "rejected/meta/p.json")
    assert record == hand and list(record) == list(hand)
    # Kept rejects store every image; store_raw_alpha=False leaves the raw alpha out.
    kept = save_record(DatasetWriter(tmp_path / "kept"), SampleRecord(
        "p", fg, alpha, accepted=False, raw_alpha=raw, error_map=error_map),
        SavePolicy(keep_rejected=True, store_raw_alpha=False))
    assert kept.action == "rejected_images"
    names = {p.relative_to(tmp_path / "kept").as_posix() for p in all_files(tmp_path / "kept")}
    assert {"rejected/fg/p.png", "rejected/alpha/p.png", "rejected/error_maps/p.png"} <= names
    assert "rejected/raw_alpha/p.png" not in names


def test_save_record_reports_a_sample_taken_by_another_writer(tmp_path):
    fg, alpha, _ = make_sample(2)
    first, second = DatasetWriter(tmp_path), DatasetWriter(tmp_path)
    assert save_record(first, SampleRecord("x", fg, alpha, accepted=True)).accepted
    outcome = save_record(second, SampleRecord("x", fg, alpha, accepted=True))
    assert outcome.action == "skipped_meanwhile" and not outcome.written


def test_save_policy_refuses_other_bit_depths():
    with pytest.raises(ValueError, match="alpha_bits must be 8 or 16"):
        SavePolicy(alpha_bits=12)
