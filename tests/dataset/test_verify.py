"""verify / rebuild_manifest: each kind of problem, repair, quarantine, non-datasets."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset import (DatasetError, DatasetWriter, index_id, read_manifest,
                                         rebuild_manifest, verify)
from helpers.dataset_samples import write_sample


def test_rebuild_manifest_matches_appended_manifest(tmp_path):
    writer = DatasetWriter(tmp_path)
    for seed in (3, 1, 2):
        write_sample(writer, index_id(seed), seed=seed)
    write_sample(writer, "rej", rejected=True)
    appended = sorted(read_manifest(tmp_path), key=lambda e: e["id"])
    (tmp_path / "manifest.jsonl").unlink()
    report = verify(tmp_path)
    assert report.counts() == {"missing_from_manifest": 3}
    assert rebuild_manifest(tmp_path) == 3
    assert read_manifest(tmp_path) == appended
    assert verify(tmp_path).ok
    # The writer notices the replaced manifest and keeps appending correctly.
    write_sample(writer, index_id(4), seed=4)
    write_sample(writer, index_id(1), seed=1)  # already complete: no duplicate line
    assert [e["id"] for e in read_manifest(tmp_path)] == ["000001", "000002", "000003", "000004"]


def test_verify_finds_each_kind_of_problem_and_repair_fixes_the_manifest(tmp_path):
    writer = DatasetWriter(tmp_path)
    for seed in range(4):
        write_sample(writer, index_id(seed), seed=seed)
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
    write_sample(writer, "a")
    write_sample(writer, "b", rejected=True)
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
    write_sample(writer, "a")
    write_sample(writer, "b", rejected=True)
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


# ---- unreadable meta: quarantine, and folders that are not datasets ----------------------------


def test_repair_moves_unreadable_meta_aside_and_the_next_write_redoes_the_sample(tmp_path):
    writer = DatasetWriter(tmp_path)
    for seed in range(3):
        write_sample(writer, index_id(seed), seed=seed)
    write_sample(writer, "rej", rejected=True)
    (tmp_path / "meta/000001.json").write_bytes(b"")
    (tmp_path / "rejected/meta/rej.json").write_text("{not json")
    report = verify(tmp_path)
    details = sorted(p.detail for p in report.problems if p.kind == "invalid_meta")
    assert details[0] == "meta/000001.json is empty"
    assert details[1].startswith("rejected/meta/rej.json is not valid JSON")
    repaired = verify(tmp_path, repair=True)
    assert repaired.quarantined == [("meta/000001.json", "quarantine/meta/000001.json"),
                                    ("rejected/meta/rej.json",
                                     "quarantine/rejected/meta/rej.json")]
    text = repaired.to_text()
    assert "meta/000001.json -> quarantine/meta/000001.json" in text and "redoes" in text
    assert (tmp_path / "quarantine/meta/000001.json").read_bytes() == b""
    assert not (tmp_path / "meta/000001.json").exists()
    after = verify(tmp_path)
    # Only the images of the two samples remain, waiting for the next run to redo them.
    assert set(after.counts()) == {"incomplete_sample"}
    assert [e["id"] for e in read_manifest(tmp_path)] == ["000000", "000002"]
    assert write_sample(DatasetWriter(tmp_path), "000001", seed=1).written
    assert [e["id"] for e in read_manifest(tmp_path)] == ["000000", "000002", "000001"]
    # A second bad file of the same name does not overwrite the quarantined one.
    (tmp_path / "meta/000001.json").write_bytes(b"x")
    again = verify(tmp_path, repair=True)
    assert again.quarantined == [("meta/000001.json", "quarantine/meta/000001.json.1")]


def test_verify_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(DatasetError, match=r"is not a dataset \(no meta/ or manifest.jsonl"):
        verify(tmp_path / "photos")
    with pytest.raises(DatasetError, match=r"is not a dataset"):
        verify(tmp_path / "photos", repair=True)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["a.png"]  # untouched
    with pytest.raises(DatasetError, match="no such dataset folder"):
        verify(tmp_path / "missing")


def test_a_root_with_only_a_manifest_or_a_lock_is_an_empty_dataset(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.jsonl").write_bytes(b"")
    assert verify(tmp_path / "a").ok
    DatasetWriter(tmp_path / "b")  # creates only the lock
    report = verify(tmp_path / "b")
    assert report.ok and report.accepted == 0


def test_meta_this_user_may_not_read_is_reported_not_moved_nor_redone(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path)
    write_sample(writer, "a")
    write_sample(writer, "b")
    denied = str(tmp_path / "meta" / "b.json")
    real_open = os.open

    def open_as_another_user(path, flags, *args):  # the tests run as root: chmod cannot deny
        if os.fspath(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_as_another_user)
    report = verify(tmp_path, repair=True)
    assert report.counts() == {"unreadable_file": 1}
    assert report.problems[0].detail == "meta/b.json cannot be read (Permission denied)"
    assert report.quarantined == [] and (tmp_path / "meta/b.json").is_file()
    assert [e["id"] for e in read_manifest(tmp_path)] == ["a", "b"]
    (tmp_path / "manifest.jsonl").write_text('{"id": "a"}\n')  # b's line lost: needs a rebuild
    blocked = verify(tmp_path, repair=True)
    assert not blocked.repaired and "1 meta file(s) cannot be read" in blocked.to_text()
    assert [e["id"] for e in read_manifest(tmp_path)] == ["a"]  # b not dropped for good
    fresh = DatasetWriter(tmp_path)
    assert fresh.status("b") == "accepted" and fresh.meta_problem("b") is None
    assert not write_sample(fresh, "b", seed=5).written  # someone else's sample is kept
