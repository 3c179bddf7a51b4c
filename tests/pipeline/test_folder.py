"""refine_folder: one bad file never ends the run; odd names and entries are reported."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from comfyui_ld_portrait.dataset import verify
from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
from comfyui_ld_portrait.pipeline import folder
from comfyui_ld_portrait.pipeline.folder import (NoInputImagesError, RefineOptions,
                                                 refine_folder)
from comfyui_ld_portrait.pipeline.synthetic import make_portrait

OPTIONS = RefineOptions(gate={"min_side": 64}, keep_rejected=True)


def _portrait_png(path, seed, size=96):
    portrait = make_portrait(seed, size)
    write_png_atomic(path, np.dstack([portrait.rgb, portrait.alpha_artifacts]))


def test_an_unexpected_error_in_one_file_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    # Only ImageFileError, OSError, ValueError and MemoryError used to be caught.
    for seed in range(3):
        _portrait_png(tmp_path / "in" / f"p{seed}.png", seed)
    real = folder.process_portrait
    calls = []

    def flaky(rgb, alpha, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated bug in a library")
        return real(rgb, alpha, **kwargs)

    monkeypatch.setattr(folder, "process_portrait", flaky)
    events = []
    summary = refine_folder(tmp_path / "in", tmp_path / "out", OPTIONS, progress=events.append)
    assert summary.completed and summary.processed == 2
    assert [(f.file, "RuntimeError" in f.reason and "simulated bug" in f.reason)
            for f in summary.failed] == [("p1.png", True)]
    assert [e.outcome for e in events].count("failed") == 1
    assert verify(tmp_path / "out").ok


def test_a_disk_full_write_stops_the_run(tmp_path, monkeypatch):
    from comfyui_ld_portrait.dataset import DatasetWriter

    for seed in range(2):
        _portrait_png(tmp_path / "in" / f"p{seed}.png", seed)

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetWriter, "write_sample", full)
    summary = refine_folder(tmp_path / "in", tmp_path / "out", OPTIONS)
    assert not summary.completed and "disk full" in summary.fatal_error
    assert summary.failed == []  # not blamed on the input file


def test_non_utf8_names_are_escaped_processed_and_reported(tmp_path):
    # Such a name once aborted the run with exit 2 without naming the file.
    source = tmp_path / "in"
    source.mkdir()
    raw_name = os.fsencode(source) + b"/caf\xe9.png"
    _portrait_png(os.fsdecode(raw_name), 1)
    with open(os.fsencode(source) + b"/bad\xff.png", "wb") as handle:
        handle.write(b"not a png")
    summary = refine_folder(source, tmp_path / "out", OPTIONS)
    assert summary.processed == 1
    assert [f.file for f in summary.failed] == ["bad\\xff.png"]
    text = summary.to_text()
    text.encode("utf-8")  # printable on a UTF-8 terminal
    json.dumps(summary.to_json(), ensure_ascii=False).encode("utf-8")
    metas = list((tmp_path / "out").rglob("meta/*.json"))
    assert [json.loads(p.read_text())["source_file"] for p in metas] == ["caf\\xe9.png"]


def test_links_loops_and_folders_named_png_are_reported_as_skipped(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    _portrait_png(source / "real.png", 0)
    os.symlink("loop.png", source / "loop.png")
    os.symlink("missing.png", source / "dangling.png")
    (source / "x.png").mkdir()
    summary = refine_folder(source, tmp_path / "out", OPTIONS)
    assert summary.found == 1 and summary.processed == 1
    skipped = {s.file: s.reason for s in summary.skipped_entries}
    assert set(skipped) == {"loop.png", "dangling.png", "x.png"}
    text = summary.to_text()
    assert all(f"    {name}: " in text for name in skipped)


def test_a_folder_without_pngs_is_an_error_and_creates_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    with pytest.raises(NoInputImagesError, match="holds no PNG"):
        refine_folder(tmp_path / "in", tmp_path / "out", OPTIONS)
    assert not (tmp_path / "out").exists()


def test_rejected_files_are_named_with_their_reasons(tmp_path):
    _portrait_png(tmp_path / "in" / "small.png", 0, size=96)
    _portrait_png(tmp_path / "in" / "fine.png", 1, size=96)
    options = RefineOptions(gate={"min_side": 64}, keep_rejected=True)
    strict = RefineOptions(gate={"min_side": 97}, keep_rejected=True)
    assert refine_folder(tmp_path / "in", tmp_path / "ok", options).rejected == 0
    summary = refine_folder(tmp_path / "in", tmp_path / "out", strict)
    assert [(r.file, r.reasons) for r in summary.rejected_files] == [
        ("fine.png", ("low_resolution",)), ("small.png", ("low_resolution",))]
    assert "    small.png: low_resolution" in summary.to_text()
    assert summary.reject_reasons == {"low_resolution": 2}


def test_summary_counts_use_the_same_words_as_the_progress_bar(tmp_path):
    import io

    from comfyui_ld_portrait.cli.common import ProgressBar
    from comfyui_ld_portrait.pipeline.summary import OUTCOME_LABELS

    _portrait_png(tmp_path / "in" / "a.png", 0)
    (tmp_path / "in" / "b.png").write_bytes(b"broken")
    stream = io.StringIO()
    bar = ProgressBar(2, stream=stream, labels=OUTCOME_LABELS)
    summary = refine_folder(tmp_path / "in", tmp_path / "out", OPTIONS,
                            progress=lambda e: bar.update(e.done, e.outcome, e.file))
    bar.finish()
    assert summary.accepted + summary.rejected == 1
    counts = f"1 {'accepted' if summary.accepted else 'rejected'}, 1 failed"
    assert f"({counts})" in stream.getvalue()
    assert f"  {counts} in " in summary.to_text()
    assert "could not be used" not in summary.to_text()


def test_an_empty_meta_file_is_redone_and_named(tmp_path):
    # One empty meta file once made every later run exit 2.
    for seed in range(2):
        _portrait_png(tmp_path / "in" / f"p{seed}.png", seed)
    first = refine_folder(tmp_path / "in", tmp_path / "out", OPTIONS)
    assert first.processed == 2
    (meta,) = [p for p in (tmp_path / "out").rglob("meta/p1.json")]
    meta.write_bytes(b"")
    again = refine_folder(tmp_path / "in", tmp_path / "out", OPTIONS)
    assert again.completed and again.processed == 1 and again.skipped_complete == 1
    assert [r.file for r in again.redone] == ["p1.png"] and "p1.json" in again.redone[0].reason
    assert "p1.png: " in again.to_text().split("redone")[1]
    assert json.loads(meta.read_text())["source_file"] == "p1.png"
    assert verify(tmp_path / "out").ok
