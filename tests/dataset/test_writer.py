"""Dataset writer: layout, atomicity, resume, manifest, concurrent writers, permissions."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset import (DatasetError, DatasetWriter, index_id, list_sample_ids,
                                         load_sample, manifest_entry, read_manifest,
                                         rebuild_manifest, verify)
from helpers.dataset_samples import all_files, make_sample, write_sample


def test_write_sample_layout_contents_and_no_temporary_files(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    fg, alpha, raw = make_sample(3)
    error_map = np.zeros((24, 50, 3), np.float32)
    outcome = writer.write_sample("000003", fg, alpha, raw_alpha=raw, error_map=error_map,
                                  meta={"seed": 3, "prompt": "a portrait", "negative": "blur",
                                        "attributes": {"hair": "curly"},
                                        "stats": {"ratio": float("nan"), "n": np.int64(4)}})
    assert outcome.written and outcome.status == "accepted"
    root = writer.root
    names = {p.relative_to(root).as_posix() for p in all_files(root)}
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
    assert entries == [manifest_entry(meta)]
    assert entries[0]["seed"] == 3 and entries[0]["alpha"] == "alpha/000003.png"
    assert verify(root).ok

    sample = load_sample(root, "000003")
    np.testing.assert_allclose(sample.alpha, alpha, atol=0.5 / 255)
    np.testing.assert_allclose(sample.raw_alpha, raw, atol=0.5 / 255)


def test_sixteen_bit_alpha(tmp_path):
    writer = DatasetWriter(tmp_path)
    fg, alpha, raw = make_sample(1)
    alpha = alpha.copy()
    alpha[0, 0] = 0.123456
    writer.write_sample("a", fg, alpha, raw_alpha=raw, alpha_bits=16)
    stored = cv2.imread(str(tmp_path / "alpha/a.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored.ndim == 2
    assert abs(stored[0, 0] / 65535 - 0.123456) < 1e-5
    assert load_sample(tmp_path, "a").alpha[0, 0] == pytest.approx(0.123456, abs=1e-5)


def test_bad_arrays_and_reserved_meta_keys_raise_before_writing(tmp_path):
    writer = DatasetWriter(tmp_path)
    fg, alpha, _ = make_sample(0)
    with pytest.raises(ValueError, match="same size"):
        writer.write_sample("x", fg[:10], alpha)
    bad = alpha.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        writer.write_sample("x", fg, bad)
    with pytest.raises(ValueError, match="set by the writer"):
        writer.write_sample("x", fg, alpha, meta={"files": {}})
    assert not writer.is_complete("x")
    assert [p.name for p in all_files(tmp_path)] == [".lock"]


def test_meta_is_renamed_last(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    order = []
    real_replace = os.replace

    def recording_replace(src, dst):
        order.append(Path(dst).relative_to(tmp_path).as_posix())
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    write_sample(writer, "s1", error_map=np.zeros((24, 24, 3), np.float32))
    assert order[-1] == "meta/s1.json"
    assert set(order[:-1]) == {"fg/s1.png", "alpha/s1.png", "raw_alpha/s1.png",
                               "error_maps/s1.png"}


def test_failure_before_meta_leaves_no_complete_sample_and_no_temp_files(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "keep", seed=1)
    before = {p: p.read_bytes() for p in all_files(tmp_path) if p.name != ".lock"}
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        write_sample(writer, "broken", seed=2)
    monkeypatch.setattr(os, "replace", real_replace)

    assert not writer.is_complete("broken")
    assert not any(p.name.startswith(".tmp-") for p in all_files(tmp_path))
    assert {p: p.read_bytes() for p in before} == before  # nothing already written was lost
    assert [e["id"] for e in read_manifest(tmp_path)] == ["keep"]
    report = verify(tmp_path)
    assert {p.kind for p in report.problems} == {"incomplete_sample"}
    # A re-run writes the sample completely.
    assert write_sample(writer, "broken", seed=2).written
    assert verify(tmp_path).ok


def test_disk_full_while_staging_images(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "first")
    calls = {"n": 0}
    real_stage = DatasetWriter._stage

    def full_disk(self, folder, name, payload):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(self, folder, name, payload)

    monkeypatch.setattr(DatasetWriter, "_stage", full_disk)
    with pytest.raises(OSError):
        write_sample(writer, "second")
    assert not writer.is_complete("second")
    assert not (tmp_path / "fg/second.png").exists()  # staged files were never renamed
    assert not any(p.name.startswith(".tmp-") for p in all_files(tmp_path))
    assert verify(tmp_path).ok


def test_complete_ids_are_skipped_and_never_overwritten(tmp_path):
    writer = DatasetWriter(tmp_path)
    assert not writer.is_complete("000001")
    assert write_sample(writer, "000001", seed=1).written
    assert writer.is_complete("000001") and writer.status("000001") == "accepted"
    content = (tmp_path / "fg/000001.png").read_bytes()
    second = write_sample(writer, "000001", seed=99)
    assert not second.written
    assert (tmp_path / "fg/000001.png").read_bytes() == content
    assert len(read_manifest(tmp_path)) == 1
    # A second writer object on the same root sees the same state.
    assert DatasetWriter(tmp_path).complete_ids() == {"000001"}


def test_rejected_samples_live_apart_and_count_as_complete(tmp_path):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "bad", rejected=True)
    fg, alpha, _ = make_sample(0)
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


def test_symlinked_subfolder_pointing_outside_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "fg").symlink_to(outside, target_is_directory=True)
    writer = DatasetWriter(root)
    with pytest.raises(DatasetError, match="outside the dataset root"):
        write_sample(writer, "s")
    assert list(outside.iterdir()) == []
    assert not writer.is_complete("s")


def test_unusable_root_gives_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="cannot use .* as a dataset folder"):
        DatasetWriter(blocker / "dataset")
    assert blocker.read_text() == "not a folder"


def test_torn_last_manifest_line_does_not_corrupt_the_next_append(tmp_path):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "a")
    with open(tmp_path / "manifest.jsonl", "ab") as handle:
        handle.write(b'{"id": "tor')  # a crash in the middle of a line
    write_sample(writer, "b")
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["id"] == "a" and json.loads(lines[-1])["id"] == "b"
    assert verify(tmp_path).counts() == {"invalid_manifest_line": 1}


def test_ensure_listed_adds_a_complete_sample_missing_from_the_manifest(tmp_path):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "a")
    write_sample(writer, "b")
    # Simulate a kill between the meta rename and the manifest append of "b".
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    (tmp_path / "manifest.jsonl").write_text(lines[0] + "\n")
    fresh = DatasetWriter(tmp_path)
    assert fresh.listed_ids() == {"a"}
    assert fresh.ensure_listed("b") is True
    assert fresh.ensure_listed("b") is False
    assert verify(tmp_path).ok


# Run in a fresh interpreter (not a fork of this threaded pytest process: a forked child can
# inherit a lock held by another thread and hang). Slow renames widen the publish step, so the
# writers really overlap there: without the root lock this test sees duplicate lines and mixed
# samples.
WRITER_PROCESS = textwrap.dedent("""
    import json, os, sys, time
    from comfyui_ld_portrait.dataset import DatasetWriter
    from helpers.dataset_samples import write_sample

    root, ids, seed = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    real_replace = os.replace

    def slow_replace(src, dst):
        time.sleep(0.002)
        real_replace(src, dst)

    os.replace = slow_replace
    writer = DatasetWriter(root, durable=False)
    for sample_id in ids:  # no is_complete() pre-check: every writer races to publish every id
        write_sample(writer, sample_id, seed=seed)
""")


def _start_writer(root, ids, seed) -> subprocess.Popen:
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, str(root), json.dumps(ids), str(seed)],
                            env=env)


def test_two_processes_on_one_root_never_duplicate_or_corrupt(tmp_path):
    ids = [index_id(i) for i in range(60)]
    # Two writers walk the same ids in the same order, so they race for nearly every id (a
    # third walks backwards); without the root lock this produces duplicate manifest lines.
    workers = [_start_writer(tmp_path, ids, 1), _start_writer(tmp_path, ids, 2),
               _start_writer(tmp_path, ids[::-1], 3)]
    try:
        for worker in workers:
            assert worker.wait(timeout=300) == 0
    finally:
        for worker in workers:
            worker.kill()
    raw_lines = (tmp_path / "manifest.jsonl").read_bytes().splitlines()
    entries = [json.loads(line) for line in raw_lines]  # every line is valid JSON
    listed = [e["id"] for e in entries]
    assert len(listed) == len(set(listed)) == len(ids)
    assert set(listed) == set(ids)
    # Each sample's files come from one writer: fg matches the seed recorded in its meta.
    for sample_id in ids:
        sample = load_sample(tmp_path, sample_id)
        expected_fg = make_sample(sample.meta["seed"])[0]
        np.testing.assert_allclose(sample.fg, expected_fg, atol=0.51 / 255)
    assert verify(tmp_path).ok


def test_two_writers_in_one_process_share_the_lock(tmp_path):
    first, second = DatasetWriter(tmp_path), DatasetWriter(tmp_path)
    write_sample(first, "a")
    assert not write_sample(second, "a").written
    write_sample(second, "b")
    write_sample(first, "c")
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

    meta_ids = set(list_sample_ids(root))
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


# ---- permissions and symlinked control files -------------------------------------------------


@pytest.fixture
def umask_007():
    previous = os.umask(0o007)
    try:
        yield 0o007
    finally:
        os.umask(previous)


def test_every_file_honours_the_umask(tmp_path, umask_007):
    writer = DatasetWriter(tmp_path / "ds")
    write_sample(writer, "a", error_map=np.zeros((24, 24, 3), np.float32))
    write_sample(writer, "b", rejected=True)
    rebuild_manifest(writer.root)  # the rebuilt manifest too
    files = all_files(writer.root)
    assert len(files) == 11  # lock, manifest, 4 + meta accepted, 4 + meta rejected
    modes = {p.relative_to(writer.root).as_posix(): p.stat().st_mode & 0o777 for p in files}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask_007), modes  # 0660, not 0600
    folders = [p for p in writer.root.rglob("*") if p.is_dir()]
    assert {p.stat().st_mode & 0o777 for p in folders} == {0o777 & ~umask_007}


def test_a_wide_umask_gives_group_and_world_readable_files(tmp_path):
    previous = os.umask(0o022)
    try:
        writer = DatasetWriter(tmp_path)
        write_sample(writer, "a")
    finally:
        os.umask(previous)
    assert (tmp_path / "meta/a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "fg/a.png").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ["manifest.jsonl", ".lock"])
def test_symlinked_manifest_or_lock_pointing_outside_is_refused(tmp_path, name):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / name).symlink_to(outside)
    fg, alpha, _ = make_sample(0)
    with pytest.raises(DatasetError, match=rf"{re.escape(name)} is a symbolic link .*outside.txt"):
        writer = DatasetWriter(root)  # the lock is opened here already
        writer.write_sample("a", fg, alpha)
    assert outside.read_text() == "precious\n"
    assert not (root / "meta/a.json").exists()


def test_dangling_manifest_link_is_refused_not_created_through(tmp_path):
    root = tmp_path / "root"
    writer = DatasetWriter(root)
    target = tmp_path / "elsewhere" / "created.jsonl"
    target.parent.mkdir()
    (root / "manifest.jsonl").symlink_to(target)
    with pytest.raises(DatasetError, match="manifest.jsonl is a symbolic link"):
        write_sample(writer, "a")
    assert not target.exists()
    with pytest.raises(DatasetError, match="symbolic link"):
        read_manifest(root)
    with pytest.raises(DatasetError, match="symbolic link"):
        verify(root)


# ---- unreadable meta files -------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"{\"id\": \"000001\", ", b"[1, 2]", b'{"id": "other"}'])
def test_an_unreadable_meta_file_is_not_complete_and_the_sample_is_redone(tmp_path, content):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "000001", seed=1)
    (tmp_path / "meta/000001.json").write_bytes(content)
    fresh = DatasetWriter(tmp_path)
    assert not fresh.is_complete("000001") and fresh.status("000001") is None
    problem = fresh.meta_problem("000001")
    assert problem is not None and problem.startswith("meta/000001.json ")
    assert "meta/000001.json" in fresh.unreadable_meta
    assert fresh.ensure_listed("000001") is False  # no exception: a later run goes on
    assert write_sample(fresh, "000001", seed=2).written  # redone, the bad file replaced
    meta = json.loads((tmp_path / "meta/000001.json").read_text())
    assert meta["id"] == "000001" and meta["seed"] == 2
    assert fresh.status("000001") == "accepted" and fresh.meta_problem("000001") is None
    assert [e["id"] for e in read_manifest(tmp_path)] == ["000001"]  # listed once


def test_complete_ids_leave_out_unreadable_meta_and_odd_entries(tmp_path):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "a")
    write_sample(writer, "b")
    write_sample(writer, "c", rejected=True)
    (tmp_path / "meta/b.json").write_bytes(b"")
    (tmp_path / "meta/not an id.json").write_text("{}")  # put there by hand
    (tmp_path / "meta/folder.json").mkdir()
    os.mkfifo(tmp_path / "meta/pipe.json")  # must not hang the reader
    assert writer.complete_ids() == {"a", "c"}
    assert writer.unreadable_meta["meta/folder.json"] == "is not a regular file"
    assert writer.unreadable_meta["meta/pipe.json"] == "is not a regular file"
    assert writer.meta_problem("b") == "meta/b.json is empty"
