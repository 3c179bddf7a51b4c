"""A file's sample id is a function of its name alone."""
from __future__ import annotations

import os

import numpy as np
import pytest

from comfyui_ld_portrait.dataset import DatasetWriter
from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
from comfyui_ld_portrait.pipeline.folder import RefineOptions, assign_ids, refine_folder
from comfyui_ld_portrait.pipeline.ids import legacy_ids, sample_id_for
from comfyui_ld_portrait.pipeline.synthetic import make_portrait

NAMES = ["a.png", "A.png", "portrait_01.png", "ComfyUI_00001_.png", "my photo.png",
         "My Photo.png", "x.PNG", os.fsdecode(b"caf\xe9.png"), "café.png"]


def test_ids_do_not_depend_on_the_other_files():
    alone = {name: assign_ids([name])[0] for name in NAMES}
    together = dict(zip(NAMES, assign_ids(NAMES)))
    reversed_order = dict(zip(NAMES[::-1], assign_ids(NAMES[::-1])))
    assert alone == together == reversed_order


def test_ids_differ_even_ignoring_case():
    ids = [sample_id_for(name) for name in NAMES]
    assert len({i.casefold() for i in ids}) == len(NAMES)


def test_lowercase_safe_names_keep_the_ids_of_earlier_versions():
    # What existing datasets hold for ordinary names (the demo, the shared test images).
    assert sample_id_for("portrait_000.png") == "portrait_000"
    assert sample_id_for("i2i_0_transparent.png") == "i2i_0_transparent"
    assert sample_id_for("a.png") == "a"
    assert "a" not in legacy_ids("a.png")
    # Capitalised names had the bare stem: resumable through legacy_ids.
    assert sample_id_for("A.png") != "A" and "A" in legacy_ids("A.png")


def _portrait_png(path, seed):
    portrait = make_portrait(seed, 96)
    write_png_atomic(path, np.dstack([portrait.rgb, portrait.alpha_artifacts]))


OPTIONS = RefineOptions(gate={"min_side": 64}, keep_rejected=True)


def test_adding_a_case_twin_does_not_redo_the_first_file(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    _portrait_png(source / "a.png", 1)
    first = refine_folder(source, out, OPTIONS)
    assert first.processed == 1
    _portrait_png(source / "A.png", 2)
    second = refine_folder(source, out, OPTIONS)
    # Before: A.png took the id "A" and a.png was redone as "a-<hash>", a duplicate.
    assert second.processed == 1 and second.skipped_complete == 1
    complete = DatasetWriter(out).complete_ids()
    assert complete == {"a", sample_id_for("A.png")}


def test_a_dataset_written_with_the_old_ids_resumes_without_duplicates(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    _portrait_png(source / "Face.png", 3)
    refine_folder(source, out, OPTIONS)
    writer = DatasetWriter(out)
    (new_id,) = writer.complete_ids()
    # Rename the sample to the id an earlier version gave (the bare stem).
    for path in list(out.rglob(f"{new_id}.*")):
        path.rename(path.with_name(path.name.replace(new_id, "Face")))
    meta = next(out.rglob("meta/Face.json"))
    meta.write_text(meta.read_text().replace(new_id, "Face"))
    assert DatasetWriter(out).complete_ids() == {"Face"}
    again = refine_folder(source, out, OPTIONS)
    assert again.skipped_complete == 1 and again.processed == 0


@pytest.mark.parametrize("name", NAMES)
def test_every_id_is_a_valid_sample_id(name):
    from comfyui_ld_portrait.dataset import validate_id

    assert validate_id(sample_id_for(name)) == sample_id_for(name)
