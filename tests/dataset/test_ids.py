"""Sample ids and dataset names: hostile names refused, stable safe ids."""
from __future__ import annotations

import pytest

from comfyui_ld_portrait.dataset import (DatasetWriter, MAX_ID_LENGTH, SampleIdError, index_id,
                                         safe_id_from_filename, validate_id)
from helpers.dataset_samples import all_files, make_sample


HOSTILE_IDS = ["../x", "..", ".", "/etc/passwd", "a/b", "a\\b", "x\x00y", "", ".hidden",
               "-rf", "a" * 129, "CON", "nul.png", "a b", "é"]


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_hostile_ids_are_refused_and_nothing_is_written(tmp_path, bad_id):
    root = tmp_path / "root"
    writer = DatasetWriter(root)
    fg, alpha, _ = make_sample(0)
    with pytest.raises(SampleIdError) as info:
        writer.write_sample(bad_id, fg, alpha)
    assert "sample id" in str(info.value)
    with pytest.raises(SampleIdError):
        writer.is_complete(bad_id)
    assert [p.relative_to(tmp_path).as_posix() for p in all_files(tmp_path)] == ["root/.lock"]


def test_non_string_id_refused():
    with pytest.raises(SampleIdError, match="string"):
        validate_id(5)


def test_id_of_128_characters_is_accepted():
    assert validate_id("a" * 128) == "a" * 128


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
        assert len(sample_id) <= MAX_ID_LENGTH
    assert safe_id_from_filename("é t é.png") == safe_id_from_filename("é t é.png")  # stable


def test_index_id():
    assert index_id(123) == "000123"
    assert index_id(1234567) == "1234567"
    with pytest.raises(ValueError):
        index_id(-1)
    with pytest.raises(ValueError):
        index_id(1.5)


def test_ids_never_differ_only_by_letter_case():
    from comfyui_ld_portrait.dataset.ids import name_digest

    upper, lower = safe_id_from_filename("A.png"), safe_id_from_filename("a.png")
    assert lower == "a" and upper == f"A-{name_digest('A.png')}"
    assert upper.casefold() != lower.casefold()
    assert safe_id_from_filename("ComfyUI_00001_.png").startswith("ComfyUI_00001_-")
