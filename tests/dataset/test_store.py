"""Dataset writer: layout, atomicity, resume, hostile ids, manifest, concurrent writers."""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset import store as ds
from comfyui_ld_portrait.dataset import (DatasetError, DatasetWriter, SampleIdError, index_id,
                                         load_sample, read_manifest, rebuild_manifest,
                                         safe_id_from_filename, validate_id, verify)


def _sample(seed: int, size: int = 24):
    rng = np.random.default_rng(seed)
    fg = rng.random((size, size, 3), dtype=np.float32)
    alpha = np.zeros((size, size), np.float32)
    alpha[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    alpha[size // 4 - 1] = 0.5
    raw = np.clip(alpha + 0.2 * rng.random((size, size), dtype=np.float32), 0, 1)
    return fg, alpha, raw


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _write(writer: DatasetWriter, sample_id: str, seed: int = 0, **kwargs):
    fg, alpha, raw = _sample(seed)
    return writer.write_sample(sample_id, fg, alpha, raw_alpha=raw,
                               meta={"seed": seed, "prompt": f"portrait {seed}"}, **kwargs)


# ---- layout and contents -------------------------------------------------------------------

def test_write_sample_layout_contents_and_no_temporary_files(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    fg, alpha, raw = _sample(3)
    error_map = np.zeros((24, 50, 3), np.float32)
    outcome = writer.write_sample("000003", fg, alpha, raw_alpha=raw, error_map=error_map,
                                  meta={"seed": 3, "prompt": "a portrait", "negative": "blur",
                                        "attributes": {"hair": "curly"},
                                        "stats": {"ratio": float("nan"), "n": np.int64(4)}})
    assert outcome.written and outcome.status == "accepted"
    root = writer.root
    names = {p.relative_to(root).as_posix() for p in _all_files(root)}
    assert names == {".lock", "manifest.jsonl", "fg/000003.png", "alpha/000003.png",
                     "raw_alpha/000003.png", "error_maps/000003.png", "meta/000003.json"}
    stored_fg = cv2.imread(str(root / "fg/000003.png"), cv2.IMREAD_UNCHANGED)
    stored_alpha = cv2.imread(str(root / "alpha/000003.png"), cv2.IMREAD_UNCHANGED)
    assert stored_fg.shape == (24, 24, 3) and stored_fg.dtype == np.uint8
    assert stored_alpha.shape == (24, 24) and stored_alpha.dtype == np.uint8
    np.testing.assert_array_equal(stored_alpha, np.round(alpha * 255).astype(np.uint8))
    # RGB order on disk is the PNG's own (OpenCV reads BGR)
    np.testing.assert_array_equal(stored_fg[..., ::-1], (fg * 255 + 0.5).astype(np.uint8))

    meta = json.loads((root / "meta/000003.json").read_text())
    assert meta["id"] == "000003" and meta["status"] == "accepted"
    assert (meta["width"], meta["height"]) == (24, 24)
    assert meta["prompt"] == "a portrait" and meta["attributes"] == {"hair": "curly"}
    assert meta["stats"] == {"ratio": None, "n": 4}  # NaN stored as null, numpy ints as ints
    assert meta["files"]["error_map"] == "error_maps/000003.png"
    entries = read_manifest(root)
    assert entries == [ds.manifest_entry(meta)]
    assert entries[0]["seed"] == 3 and entries[0]["alpha"] == "alpha/000003.png"
    assert verify(root).ok

    sample = load_sample(root, "000003")
    np.testing.assert_allclose(sample.alpha, alpha, atol=0.5 / 255)
    np.testing.assert_allclose(sample.raw_alpha, raw, atol=0.5 / 255)


def test_sixteen_bit_alpha(tmp_path):
    writer = DatasetWriter(tmp_path)
    fg, alpha, raw = _sample(1)
    alpha = alpha.copy()
    alpha[0, 0] = 0.123456
    writer.write_sample("a", fg, alpha, raw_alpha=raw, alpha_bits=16)
    stored = cv2.imread(str(tmp_path / "alpha/a.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored.ndim == 2
    assert abs(stored[0, 0] / 65535 - 0.123456) < 1e-5
    assert load_sample(tmp_path, "a").alpha[0, 0] == pytest.approx(0.123456, abs=1e-5)


def test_bad_arrays_and_reserved_meta_keys_raise_before_writing(tmp_path):
    writer = DatasetWriter(tmp_path)
    fg, alpha, _ = _sample(0)
    with pytest.raises(ValueError, match="same size"):
        writer.write_sample("x", fg[:10], alpha)
    bad = alpha.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        writer.write_sample("x", fg, bad)
    with pytest.raises(ValueError, match="set by the writer"):
        writer.write_sample("x", fg, alpha, meta={"files": {}})
    assert not writer.is_complete("x")
    assert [p.name for p in _all_files(tmp_path)] == [".lock"]


# ---- atomicity, meta last, resume ----------------------------------------------------------

def test_meta_is_renamed_last(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    order = []
    real_replace = os.replace

    def recording_replace(src, dst):
        order.append(Path(dst).relative_to(tmp_path).as_posix())
        return real_replace(src, dst)

    monkeypatch.setattr(ds.os, "replace", recording_replace)
    _write(writer, "s1", error_map=np.zeros((24, 24, 3), np.float32))
    assert order[-1] == "meta/s1.json"
    assert set(order[:-1]) == {"fg/s1.png", "alpha/s1.png", "raw_alpha/s1.png",
                               "error_maps/s1.png"}


def test_failure_before_meta_leaves_no_complete_sample_and_no_temp_files(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    _write(writer, "keep", seed=1)
    before = {p: p.read_bytes() for p in _all_files(tmp_path) if p.name != ".lock"}
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(ds.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        _write(writer, "broken", seed=2)
    monkeypatch.setattr(ds.os, "replace", real_replace)

    assert not writer.is_complete("broken")
    assert not any(p.name.startswith(".tmp-") for p in _all_files(tmp_path))
    assert {p: p.read_bytes() for p in before} == before  # nothing already written was lost
    assert [e["id"] for e in read_manifest(tmp_path)] == ["keep"]
    report = verify(tmp_path)
    assert {p.kind for p in report.problems} == {"incomplete_sample"}
    # A re-run writes the sample completely.
    assert _write(writer, "broken", seed=2).written
    assert verify(tmp_path).ok


def test_disk_full_while_staging_images(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    _write(writer, "first")
    calls = {"n": 0}
    real_stage = DatasetWriter._stage

    def full_disk(self, folder, name, payload):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(self, folder, name, payload)

    monkeypatch.setattr(DatasetWriter, "_stage", full_disk)
    with pytest.raises(OSError):
        _write(writer, "second")
    assert not writer.is_complete("second")
    assert not (tmp_path / "fg/second.png").exists()  # staged files were never renamed
    assert not any(p.name.startswith(".tmp-") for p in _all_files(tmp_path))
    assert verify(tmp_path).ok


def test_complete_ids_are_skipped_and_never_overwritten(tmp_path):
    writer = DatasetWriter(tmp_path)
    assert not writer.is_complete("000001")
    assert _write(writer, "000001", seed=1).written
    assert writer.is_complete("000001") and writer.status("000001") == "accepted"
    content = (tmp_path / "fg/000001.png").read_bytes()
    second = _write(writer, "000001", seed=99)
    assert not second.written
    assert (tmp_path / "fg/000001.png").read_bytes() == content
    assert len(read_manifest(tmp_path)) == 1
    # A second writer object on the same root sees the same state.
    assert DatasetWriter(tmp_path).complete_ids() == {"000001"}


def test_rejected_samples_live_apart_and_count_as_complete(tmp_path):
    writer = DatasetWriter(tmp_path)
    _write(writer, "bad", rejected=True)
    fg, alpha, _ = _sample(0)
    writer.write_sample("bad2", fg, alpha, meta={"verdict": {"keep": False}}, rejected=True,
                        store_images=False)
    assert writer.status("bad") == "rejected" and writer.status("bad2") == "rejected"
    assert (tmp_path / "rejected/fg/bad.png").is_file()
    assert not (tmp_path / "rejected/fg/bad2.png").exists()
    assert read_manifest(tmp_path) == []
    report = verify(tmp_path)
    assert report.ok and report.rejected == 2 and report.accepted == 0
    with pytest.raises(ValueError, match="only meaningful for rejected"):
        writer.write_sample("c", fg, alpha, store_images=False)


# ---- ids -------------------------------------------------------------------------------------

HOSTILE_IDS = ["../x", "..", ".", "/etc/passwd", "a/b", "a\\b", "x\x00y", "", ".hidden",
               "-rf", "a" * 129, "CON", "nul.png", "a b", "é"]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_hostile_ids_are_refused_and_nothing_is_written(tmp_path, bad_id):
    root = tmp_path / "root"
    writer = DatasetWriter(root)
    fg, alpha, _ = _sample(0)
    with pytest.raises(SampleIdError) as info:
        writer.write_sample(bad_id, fg, alpha)
    assert "sample id" in str(info.value)
    with pytest.raises(SampleIdError):
        writer.is_complete(bad_id)
    assert [p.relative_to(tmp_path).as_posix() for p in _all_files(tmp_path)] == ["root/.lock"]


def test_non_string_id_refused():
    with pytest.raises(SampleIdError, match="string"):
        validate_id(5)


def test_id_of_128_characters_is_accepted():
    assert validate_id("a" * 128) == "a" * 128


def test_symlinked_subfolder_pointing_outside_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "fg").symlink_to(outside, target_is_directory=True)
    writer = DatasetWriter(root)
    with pytest.raises(DatasetError, match="outside the dataset root"):
        _write(writer, "s")
    assert list(outside.iterdir()) == []
    assert not writer.is_complete("s")


def test_safe_id_from_filename():
    assert safe_id_from_filename("portrait_01.png") == "portrait_01"
    assert safe_id_from_filename("/some/dir/portrait_01.png") == "portrait_01"
    spaced, underscored = safe_id_from_filename("a b.png"), safe_id_from_filename("a_b.png")
    assert underscored == "a_b" and spaced.startswith("a_b-") and spaced != underscored
    upper = safe_id_from_filename("x.PNG")
    assert upper != "x" and upper.startswith("x-")
    for name in ["../../etc/passwd.png", ".hidden.png", "CON.png", "\x00.png", "é t é.png",
                 "x" * 400 + ".png", ".png", "-rf.png", "a\\b.png"]:
        sample_id = safe_id_from_filename(name)
        assert validate_id(sample_id) == sample_id
        assert len(sample_id) <= ds.MAX_ID_LENGTH
    assert safe_id_from_filename("é t é.png") == safe_id_from_filename("é t é.png")  # stable


def test_index_id():
    assert index_id(123) == "000123"
    assert index_id(1234567) == "1234567"
    with pytest.raises(ValueError):
        index_id(-1)
    with pytest.raises(ValueError):
        index_id(1.5)


def test_unusable_root_gives_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="cannot use .* as a dataset folder"):
        DatasetWriter(blocker / "dataset")
    assert blocker.read_text() == "not a folder"


# ---- manifest --------------------------------------------------------------------------------

def test_rebuild_manifest_matches_appended_manifest(tmp_path):
    writer = DatasetWriter(tmp_path)
    for seed in (3, 1, 2):
        _write(writer, index_id(seed), seed=seed)
    _write(writer, "rej", rejected=True)
    appended = sorted(read_manifest(tmp_path), key=lambda e: e["id"])
    (tmp_path / "manifest.jsonl").unlink()
    report = verify(tmp_path)
    assert report.counts() == {"missing_from_manifest": 3}
    assert rebuild_manifest(tmp_path) == 3
    assert read_manifest(tmp_path) == appended
    assert verify(tmp_path).ok
    # The writer notices the replaced manifest and keeps appending correctly.
    _write(writer, index_id(4), seed=4)
    _write(writer, index_id(1), seed=1)  # already complete: no duplicate line
    assert [e["id"] for e in read_manifest(tmp_path)] == ["000001", "000002", "000003", "000004"]


def test_verify_finds_each_kind_of_problem_and_repair_fixes_the_manifest(tmp_path):
    writer = DatasetWriter(tmp_path)
    for seed in range(4):
        _write(writer, index_id(seed), seed=seed)
    (tmp_path / "alpha/000000.png").unlink()                                   # missing_file
    (tmp_path / "meta/000001.json").write_text("{not json")                     # invalid_meta
    with open(tmp_path / "manifest.jsonl", "a") as handle:
        handle.write('{"id": "ghost"}\n{"id": "000002"}\ngarbage\n')          # 3 manifest kinds
    (tmp_path / "fg/orphan.png").write_bytes(b"x")                              # incomplete_sample
    (tmp_path / "fg/.tmp-abc.png").write_bytes(b"x")                            # temporary_file
    cv2.imwrite(str(tmp_path / "raw_alpha/000003.png"), np.zeros((5, 7), np.uint8))  # size
    report = verify(tmp_path)
    assert not report.ok
    assert report.counts() == {"missing_file": 1, "invalid_meta": 1, "manifest_without_meta": 2,
                               "duplicate_manifest_line": 1, "invalid_manifest_line": 1,
                               "incomplete_sample": 1, "temporary_file": 1, "size_mismatch": 1}
    # 'ghost' and '000001' (its meta is unreadable) are listed without valid meta.
    assert {p.sample_id for p in report.problems if p.kind == "manifest_without_meta"} == {
        "ghost", "000001"}
    assert "missing_file" in report.to_text()
    with pytest.raises(ValueError, match="line .*rebuild_manifest"):
        read_manifest(tmp_path)
    repaired = verify(tmp_path, repair=True, stale_after_s=0)
    assert repaired.repaired and repaired.removed_temporary == 1
    after = verify(tmp_path)
    assert not any(p.kind in after.MANIFEST_KINDS for p in after.problems)
    assert [e["id"] for e in read_manifest(tmp_path)] == ["000000", "000002", "000003"]


def test_verify_names_the_folder_of_each_temporary_file(tmp_path):
    writer = DatasetWriter(tmp_path)
    _write(writer, "a")
    _write(writer, "b", rejected=True)
    (tmp_path / "meta/.tmp-x.json").write_bytes(b"x")
    (tmp_path / "fg/.tmp-w.png").write_bytes(b"x")
    (tmp_path / "rejected/meta/.tmp-z.json").write_bytes(b"x")
    (tmp_path / "rejected/fg/.tmp-y.png").write_bytes(b"x")
    report = verify(tmp_path)
    details = sorted(p.detail for p in report.problems if p.kind == "temporary_file")
    assert details == ["fg/.tmp-w.png", "meta/.tmp-x.json", "rejected/fg/.tmp-y.png",
                       "rejected/meta/.tmp-z.json"]
    assert report.ok  # temporary files alone are not a problem


def test_verify_reports_a_non_png_image_as_invalid_not_as_a_size_mismatch(tmp_path):
    writer = DatasetWriter(tmp_path)
    _write(writer, "a")
    _write(writer, "b", rejected=True)
    ok, jpeg = cv2.imencode(".jpg", np.zeros((24, 24, 3), np.uint8))
    assert ok
    (tmp_path / "fg/a.png").write_bytes(jpeg.tobytes())           # another format
    (tmp_path / "rejected/alpha/b.png").write_bytes(b"\x89PNG")    # truncated header
    report = verify(tmp_path)
    assert report.counts() == {"invalid_image": 2}
    assert {(p.sample_id, p.detail) for p in report.problems} == {
        ("a", "fg/a.png is not a readable PNG"),
        ("b", "rejected/alpha/b.png is not a readable PNG")}
    assert not report.ok and "invalid_image" in report.to_text()
    assert "invalid_image" in report.KINDS


def test_torn_last_manifest_line_does_not_corrupt_the_next_append(tmp_path):
    writer = DatasetWriter(tmp_path)
    _write(writer, "a")
    with open(tmp_path / "manifest.jsonl", "ab") as handle:
        handle.write(b'{"id": "tor')  # a crash in the middle of a line
    _write(writer, "b")
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["id"] == "a" and json.loads(lines[-1])["id"] == "b"
    assert verify(tmp_path).counts() == {"invalid_manifest_line": 1}


def test_ensure_listed_adds_a_complete_sample_missing_from_the_manifest(tmp_path):
    writer = DatasetWriter(tmp_path)
    _write(writer, "a")
    _write(writer, "b")
    # Simulate a kill between the meta rename and the manifest append of "b".
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    (tmp_path / "manifest.jsonl").write_text(lines[0] + "\n")
    fresh = DatasetWriter(tmp_path)
    assert fresh.listed_ids() == {"a"}
    assert fresh.ensure_listed("b") is True
    assert fresh.ensure_listed("b") is False
    assert verify(tmp_path).ok


# ---- several writers -------------------------------------------------------------------------

def _writer_process(root: str, ids: list[str], seed: int) -> None:
    # Slow renames (this forked child only) widen the publish step, so the writers really
    # overlap there: without the root lock this test sees duplicate lines and mixed samples.
    real_replace = os.replace

    def slow_replace(src, dst):
        time.sleep(0.002)
        real_replace(src, dst)

    os.replace = slow_replace
    writer = DatasetWriter(root, durable=False)
    for sample_id in ids:
        # No is_complete() pre-check: every writer stages every id and races to publish it.
        _write(writer, sample_id, seed=seed)


def test_two_processes_on_one_root_never_duplicate_or_corrupt(tmp_path):
    ids = [index_id(i) for i in range(60)]
    context = multiprocessing.get_context("fork")
    # Two writers walk the same ids in the same order, so they race for nearly every id (a
    # third walks backwards); without the root lock this produces duplicate manifest lines.
    workers = [context.Process(target=_writer_process, args=(str(tmp_path), ids, 1)),
               context.Process(target=_writer_process, args=(str(tmp_path), ids, 2)),
               context.Process(target=_writer_process, args=(str(tmp_path), ids[::-1], 3))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    raw_lines = (tmp_path / "manifest.jsonl").read_bytes().splitlines()
    entries = [json.loads(line) for line in raw_lines]  # every line is valid JSON
    listed = [e["id"] for e in entries]
    assert len(listed) == len(set(listed)) == len(ids)
    assert set(listed) == set(ids)
    # Each sample's files come from one writer: fg matches the seed recorded in its meta.
    for sample_id in ids:
        sample = load_sample(tmp_path, sample_id)
        expected_fg = _sample(sample.meta["seed"])[0]
        np.testing.assert_allclose(sample.fg, expected_fg, atol=0.51 / 255)
    assert verify(tmp_path).ok


def test_two_writers_in_one_process_share_the_lock(tmp_path):
    first, second = DatasetWriter(tmp_path), DatasetWriter(tmp_path)
    _write(first, "a")
    assert not _write(second, "a").written
    _write(second, "b")
    _write(first, "c")
    assert [e["id"] for e in read_manifest(tmp_path)] == ["a", "b", "c"]


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from comfyui_ld_portrait.dataset import DatasetWriter, index_id
    writer = DatasetWriter(sys.argv[1])
    rng = np.random.default_rng(0)
    alpha = np.zeros((32, 32), np.float32)
    alpha[8:24, 8:24] = 1.0
    for index in range(int(sys.argv[2])):
        sample_id = index_id(index)
        if writer.is_complete(sample_id):
            continue
        fg = rng.random((32, 32, 3), dtype=np.float32)
        writer.write_sample(sample_id, fg, alpha, raw_alpha=alpha, meta={"seed": index})
        print(index, flush=True)
""")


def test_sigkill_mid_run_leaves_only_complete_samples_and_rerun_finishes(tmp_path):
    total = 300
    root = tmp_path / "ds"
    command = [sys.executable, "-c", _KILL_SCRIPT, str(root), str(total)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for _ in range(40):  # let it write some samples, then kill it without warning
        process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    process.stdout.close()

    meta_ids = set(ds.list_sample_ids(root))
    assert 40 <= len(meta_ids) < total
    listed = [json.loads(line)["id"] for line in
              (root / "manifest.jsonl").read_text().splitlines() if line.endswith("}")]
    assert set(listed) <= meta_ids and len(listed) == len(set(listed))
    report = verify(root)
    allowed = {"temporary_file", "incomplete_sample", "missing_from_manifest"}
    assert {p.kind for p in report.problems} <= allowed, report.to_text()
    assert report.counts().get("missing_from_manifest", 0) <= 1

    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    # The re-run does not list the sample a kill may have left unlisted: ensure_listed does.
    writer = DatasetWriter(root)
    for sample_id in writer.complete_ids() - writer.listed_ids():
        writer.ensure_listed(sample_id)
    entries = read_manifest(root)
    assert sorted(e["id"] for e in entries) == [index_id(i) for i in range(total)]
    final = verify(root, repair=True, stale_after_s=0)
    assert {p.kind for p in final.problems} <= {"temporary_file"}
    assert verify(root).ok and not verify(root).problems


# ---- batch saving, disk-full detection, reading back ----------------------------------------

def test_is_disk_full_knows_enospc_and_edquot_only():
    assert ds.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    if hasattr(errno, "EDQUOT"):
        assert ds.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not ds.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not ds.is_disk_full(OSError("no errno"))
    assert not ds.is_disk_full(ValueError(errno.ENOSPC))


def test_decide_keep_per_image_and_json_inputs():
    keep, reject = {"keep": True}, {"keep": False, "reasons": ["blurry"]}
    assert ds.decide_keep(False, [keep, reject, None]) == [True, False, False]
    assert ds.decide_keep(False, [keep, None]) == [False, False]  # deliberate switch: veto
    assert ds.per_image([1, 2], 2, "stats") == [1, 2]
    assert ds.per_image([7], 3, "stats") == [7, 7, 7]
    assert ds.per_image({"a": 1}, 2, "stats") == [{"a": 1}, {"a": 1}]
    with pytest.raises(ValueError, match="stats holds 2 entries but the batch has 3"):
        ds.per_image([1, 2], 3, "stats")
    assert ds.parse_json_input("  ", "verdict", empty="E") == "E"
    assert ds.parse_json_input('{"a": 1}', "attributes", kinds=(dict,)) == {"a": 1}
    with pytest.raises(ValueError, match="attributes must be a JSON object, got list"):
        ds.parse_json_input("[1]", "attributes", kinds=(dict,))
    with pytest.raises(ValueError, match="verdict is not valid JSON"):
        ds.parse_json_input("{oops", "verdict")
    assert ds.models_value(' {"ckpt": "x"} ') == {"ckpt": "x"}
    assert ds.models_value(" sdxl base ") == "sdxl base" and ds.models_value("") is None
    assert ds.common_meta(prompt="p", seed=np.int64(3), models=None) == {"prompt": "p", "seed": 3}


def test_save_batch_writes_decides_and_skips(tmp_path):
    writer = DatasetWriter(tmp_path)
    samples = [_sample(seed) for seed in range(3)]
    fgs = [s[0] for s in samples]
    alphas = [s[1] for s in samples]
    raws = [s[2] for s in samples]
    verdicts = [{"keep": True}, {"keep": False, "reasons": ["multiple_people"]}, None]
    calls = []
    outcomes = ds.save_batch(
        writer, ["a", "b", "c"], fgs, alphas, raw_alphas=raws,
        decisions=ds.decide_keep(False, verdicts), verdicts=verdicts,
        refinements=[{"changed_pixels": 1}, None, None], common={"prompt": "p"},
        first_index=10, before_each=lambda: calls.append("before"),
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
    assert "raw_alpha" in meta_a["files"]
    b, c = load_sample(tmp_path, "b"), load_sample(tmp_path, "c")
    assert b.meta["rejected_by"] == "verdict" and c.meta["rejected_by"] == ds.KEEP_INPUT_REASON
    assert b.fg is None and b.meta["files"] == {}
    again = ds.save_batch(writer, ["a", "d"], fgs[:2], alphas[:2], decisions=[True, False],
                          keep_rejected=True)
    assert [(o.action, o.written) for o in again] == [("skipped", False),
                                                     ("rejected_images", True)]
    assert again[0].line == "a: skipped (already complete, accepted)"
    assert load_sample(tmp_path, "d").fg is not None
    with pytest.raises(ValueError, match="one length"):
        ds.save_batch(writer, ["e"], fgs, alphas, decisions=[True])


def test_save_batch_turns_a_full_disk_into_a_dataset_error(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    fg, alpha, _ = _sample(0)
    real_stage = DatasetWriter._stage

    def stage(self, folder, name, payload):
        if name.startswith("y"):
            raise OSError(errno.EDQUOT if hasattr(errno, "EDQUOT") else errno.ENOSPC, "quota")
        return real_stage(self, folder, name, payload)

    monkeypatch.setattr(DatasetWriter, "_stage", stage)
    with pytest.raises(DatasetError, match=r"cannot write sample y .*\(disk full\?\).* Samples x "
                                           "were written completely"):
        ds.save_batch(writer, ["x", "y"], [fg, fg], [alpha, alpha], decisions=[True, True])
    assert writer.status("x") == "accepted" and writer.status("y") is None


def test_load_sample_reads_a_colour_alpha_file_as_luma_not_blue(tmp_path):
    writer = DatasetWriter(tmp_path)
    _write(writer, "a")
    stored = load_sample(tmp_path, "a").alpha
    height, width = stored.shape
    bgr = np.zeros((height, width, 3), np.uint8)
    bgr[..., 2] = 255  # a red picture: its blue channel is 0, its luma 0.299
    cv2.imwrite(str(tmp_path / "alpha/a.png"), bgr)
    assert np.allclose(load_sample(tmp_path, "a").alpha, 0.299, atol=1e-6)
    (tmp_path / "alpha/a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable PNG"):
        load_sample(tmp_path, "a")
