"""`ld-portrait dataset card` (dataset/card.py): the hub header, the licence from the models,
the tables, the sample sheet, and the card of an hf export that `datasets` loads by its
configs."""
from __future__ import annotations

import io
import re

import cv2
import pytest
import yaml

from comfyui_ld_portrait.cli.app import main
from comfyui_ld_portrait.cli.common import EXIT_FAILED, EXIT_OK
from comfyui_ld_portrait.dataset.card import (SHEET_PATH, licence_of_models, size_category,
                                              write_dataset_card)
from comfyui_ld_portrait.dataset.export_shards import ShardOptions, export_shards
from helpers.shard_samples import make_shard_dataset


def _header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_shard_dataset(tmp_path_factory.mktemp("card") / "dataset", 40)


def test_card_of_a_dataset_has_the_hub_header_tables_and_its_picture(dataset, root):
    out, err = io.StringIO(), io.StringIO()
    assert main(["dataset", "card", str(dataset)], stdout=out, stderr=err) == EXIT_OK
    text = (dataset / "README.md").read_text("utf-8")
    header = _header(text)
    assert header["license"] == "openrail++"  # every sample records sdxl
    assert header["task_categories"] == ["image-segmentation"]
    assert header["size_categories"] == ["n<1K"]
    assert "image-matting" in header["tags"] and header["pretty_name"]
    assert "| accepted (the dataset) | 40 |" in text
    assert "| hair | red | 10 | 0 |" in text  # attribute distribution
    assert "@article{lu2025ldportrait" in text
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(shown) == sorted(f"card/{name}" for name in (
        "samples.png", "attributes.png", "gate_reasons.png", "foreground_fraction.png",
        "refinement_changed.png"))
    for relative in shown:  # each picture exists and shows something
        picture = cv2.imread(str(dataset / relative))
        assert picture is not None and picture.size > 0 and picture.std() > 0, relative
    # The stats fixture: gate reasons table, models text
    assert main(["dataset", "card", str(root), "--no-pictures"], stdout=out,
                stderr=err) == EXIT_OK
    text = (root / "README.md").read_text("utf-8")
    assert "| multiple_people | 2 |" in text and "| cut_off_top | 1 |" in text
    assert not (root / SHEET_PATH).exists() and "![" not in text


def test_charts_count_what_the_meta_records():
    from comfyui_ld_portrait.dataset.card_pictures import bar_chart, histogram_chart

    small, large = bar_chart("t", ["a", "b"], [1, 4]), bar_chart("t", ["a", "b", "c"], [1, 2, 3])
    assert large.shape[0] > small.shape[0] and small.shape[1] == large.shape[1]
    # the longest bar belongs to the largest value: more blue-ish pixels on its row
    bars = (small[..., 2] > 150) & (small[..., 0] < 120)
    rows = [bars[40 + i * 22: 40 + (i + 1) * 22].sum() for i in range(2)]
    assert rows[1] > 3 * rows[0] > 0
    assert histogram_chart("h", [None, None]).shape[0] > 0  # nothing recorded: still a picture


def test_card_of_an_hf_export_names_its_configs_and_loads(dataset, tmp_path, monkeypatch):
    import datasets

    dest = tmp_path / "export"
    export_shards(dataset, dest, ShardOptions("hf", limits=(10, 30)))
    written = write_dataset_card(dataset, dest)
    assert [p.name for p in written][:2] == ["README.md", "samples.png"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    header = _header((dest / "README.md").read_text("utf-8"))
    names = [config["config_name"] for config in header["configs"]]
    assert names == ["limit_10", "limit_30"]
    assert header["configs"][0]["default"] is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    loaded = datasets.load_dataset(str(dest), "limit_30", cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].num_rows == 30 and loaded["validation"].num_rows == 4


def test_licence_follows_the_models():
    flux = licence_of_models({"FLUX.1-dev + layer_xl": 3, "sdxl": 5})
    assert (flux.hub_id, flux.name) == ("other", "flux-1-dev-non-commercial-license")
    assert "non-commercial" in flux.note
    assert licence_of_models({"sd_xl_base_1.0.safetensors": 2}).hub_id == "openrail++"
    assert licence_of_models({"flux1-schnell": 2}).hub_id == "apache-2.0"
    mixed = licence_of_models({"sdxl": 1, "my_own_model": 1})
    assert (mixed.hub_id, mixed.name) == ("other", "mixed") and "my_own_model" in mixed.note
    assert mixed.models["my_own_model"] is None
    none = licence_of_models({})
    assert none.hub_id == "other" and "no models" in none.note


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 20051, 100_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M"]


def test_card_of_a_missing_folder_fails(tmp_path):
    err = io.StringIO()
    assert main(["dataset", "card", str(tmp_path / "nope")], stdout=io.StringIO(),
                stderr=err) == EXIT_FAILED
    assert "no such dataset folder" in err.getvalue()


def test_the_card_sample_sheet_shows_the_samples_over_a_checker_only(dataset, tmp_path, monkeypatch):
    """The card's sample sheet is "a grid of samples over a checkerboard"."""
    from comfyui_ld_portrait.base import composite

    kinds = []

    original = composite.procedural_background

    def spy(kind, *args, **kwargs):
        kinds.append(kind)
        return original(kind, *args, **kwargs)

    monkeypatch.setattr(composite, "procedural_background", spy)
    write_dataset_card(dataset, output_folder=tmp_path / "card_out")
    assert kinds and set(kinds) == {"checker"}, kinds
