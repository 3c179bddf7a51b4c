"""`dataset export --layout hf|webdataset` (dataset/export_shards.py, export_hf.py,
export_wds.py): what `datasets` and `webdataset` read back, shard sizes, checksums, resume,
nested subsets, errors."""
from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from comfyui_ld_portrait.cli.app import main
from comfyui_ld_portrait.cli.common import EXIT_OK, EXIT_USAGE
from comfyui_ld_portrait.dataset import DatasetWriter
from comfyui_ld_portrait.dataset import export_hf
from comfyui_ld_portrait.dataset.export import ExportError, plan_split
from comfyui_ld_portrait.dataset.export_shards import (CHECKSUMS_NAME, SHARDS_NAME,
                                                       ShardOptions, export_shards)
from comfyui_ld_portrait.dataset.export_wds import id_from_key, sample_key
from helpers.shard_samples import make_shard_dataset, stored_pixels

COUNT = 200


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_shard_dataset(tmp_path_factory.mktemp("shards") / "dataset", COUNT)


@pytest.fixture(scope="module")
def accepted_ids(source) -> list:
    return sorted(p.stem for p in (source / "meta").glob("*.json"))


def _small_shards(source: Path, tmp_path_factory, layout: str) -> Path:
    """``source`` exported in ``layout`` with 0.1 MB shards (several per split), without failures."""
    dest = tmp_path_factory.mktemp(layout) / "export"
    result = export_shards(source, dest, ShardOptions(layout, shard_mb=0.1))
    assert not result.failures and not result.interrupted
    return dest


@pytest.fixture(scope="module")
def hf_export(source, tmp_path_factory) -> Path:
    return _small_shards(source, tmp_path_factory, "hf")


@pytest.fixture(scope="module")
def wds_export(source, tmp_path_factory) -> Path:
    return _small_shards(source, tmp_path_factory, "webdataset")


def _load_offline(data_dir: Path, cache: Path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    return datasets.load_dataset("parquet", data_dir=str(data_dir), cache_dir=str(cache))


def _checksums(folder: Path) -> dict:
    lines = (folder / CHECKSUMS_NAME).read_text().splitlines()
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# hf
# --------------------------------------------------------------------------------------------

def test_hf_export_loads_offline_with_images_bit_for_bit(source, accepted_ids, hf_export,
                                                         tmp_path, monkeypatch):
    import datasets

    loaded = _load_offline(hf_export, tmp_path / "cache", monkeypatch)
    train, validation = plan_split(accepted_ids, 0.9, 0)
    assert set(loaded) == {"train", "validation"}
    assert list(loaded["train"]["id"]) == train  # the split and order of the folder layouts
    assert list(loaded["validation"]["id"]) == validation
    assert isinstance(loaded["train"].features["fg"], datasets.Image)
    assert isinstance(loaded["train"].features["alpha"], datasets.Image)
    sixteen = 0
    for split in ("train", "validation"):
        for row in loaded[split]:
            sample_id = row["id"]
            fg, alpha = np.array(row["fg"]), np.array(row["alpha"])
            expected_alpha = stored_pixels(source, sample_id, "alpha")
            assert fg.dtype == np.uint8
            np.testing.assert_array_equal(fg, stored_pixels(source, sample_id, "fg"))
            assert alpha.dtype == expected_alpha.dtype, sample_id
            np.testing.assert_array_equal(alpha, expected_alpha)
            sixteen += alpha.dtype == np.uint16
            meta = json.loads((source / "meta" / f"{sample_id}.json").read_text())
            assert row["alpha_bits"] == meta["alpha_bits"]
            assert (row["width"], row["height"]) == (fg.shape[1], fg.shape[0])
            assert row["prompt"] == meta["prompt"] and row["negative_prompt"] == "blurry"
            assert row["seed"] == meta["seed"]
            assert json.loads(row["attributes"]) == meta["attributes"]
            assert json.loads(row["models"])["base"] == "sdxl"
            assert row["refinement_changed_fraction"] == meta["refinement"]["changed_fraction"]
            assert row["refinement_pinholes_filled"] == meta["refinement"]["pinholes_filled"]
            assert row["gate_keep"] is True and json.loads(row["gate_reasons"]) == []
            assert row["gate_foreground_fraction"] == \
                meta["verdict"]["measures"]["foreground_fraction"]
            assert row["gate_center_offset"] is None  # not measured: null, not 0
            assert json.loads(row["meta"]) == meta
            if "provenance" in meta:
                assert row["provenance_sha256"] == meta["provenance"]["sha256"]
                assert (source / row["provenance_file"]).is_file()
            else:
                assert row["provenance_sha256"] is None
    assert sixteen == COUNT // 5  # the 16-bit mattes came back as 16 bit


def test_hf_shards_are_bounded_and_listed_with_their_sha256(hf_export):
    import pyarrow.parquet as pq

    sums = _checksums(hf_export)
    shards = sorted((hf_export / "data").iterdir())
    assert len(shards) > 5  # 0.1 MB shards of a ~1 MB dataset
    assert sorted(sums) == [f"data/{path.name}" for path in shards]
    record = json.loads((hf_export / SHARDS_NAME).read_text())
    for path in shards:
        assert sums[f"data/{path.name}"] == _sha256(path)
        entry = next(e for e in record["shards"] if e["file"] == f"data/{path.name}")
        assert pq.ParquetFile(path).metadata.num_rows == entry["rows"] == len(entry["ids"])
        # payload up to 0.1 MB, plus the last sample that did not fit and Parquet's overhead
        assert path.stat().st_size < 0.1e6 + 20_000
    assert {e["file"].split("/")[1].split("-")[0] for e in record["shards"]} == \
        {"train", "validation"}


def test_hf_shard_is_written_in_row_groups(source, tmp_path, monkeypatch):
    """Rows go to disk a row group at a time (memory bounded by the group, not the shard)."""
    import pyarrow.parquet as pq

    monkeypatch.setattr(export_hf, "ROW_GROUP_BYTES", 5_000)
    export_shards(source, tmp_path / "out", ShardOptions("hf", shard_mb=1000))
    shard = tmp_path / "out" / "data" / "train-00000-of-00001.parquet"
    metadata = pq.ParquetFile(shard).metadata
    assert metadata.num_rows == 180
    assert metadata.num_row_groups > 10


def test_interrupted_export_resumes_after_the_last_complete_shard(source, hf_export, tmp_path):
    dest = tmp_path / "out"
    seen = []

    def stop_after_80():
        seen.append(1)
        return len(seen) > 80

    first = export_shards(source, dest, ShardOptions("hf", shard_mb=0.1),
                          should_stop=stop_after_80)
    assert first.interrupted
    done = _checksums(dest)
    assert 0 < len(done) < len(_checksums(hf_export))
    assert not [p for p in (dest / "data").iterdir() if p.name.startswith(".")]  # no leftovers
    inodes = {name: (dest / name).stat().st_ino for name in done}
    second = export_shards(source, dest, ShardOptions("hf", shard_mb=0.1))
    assert not second.interrupted and second.counts["skipped"] > 0
    assert {name: (dest / name).stat().st_ino for name in done} == inodes  # not rewritten
    assert _checksums(dest) == _checksums(hf_export)  # the same bytes as one run


def test_nested_limits_share_the_validation_and_link_full_shards(source, accepted_ids,
                                                                 tmp_path):
    dest = tmp_path / "out"
    result = export_shards(source, dest, ShardOptions("hf", shard_mb=0.1, limits=(50, 120)))
    assert result.subsets == {"limit_050": {"train": 50, "validation": 20},
                              "limit_120": {"train": 120, "validation": 20}}
    assert result.counts["linked"] > 0
    records = {folder: json.loads((dest / folder / SHARDS_NAME).read_text())
               for folder in ("limit_050", "limit_120")}

    def ids(folder, split):
        return [i for e in records[folder]["shards"] if e["split"] == split for i in e["ids"]]

    train, validation = plan_split(accepted_ids, 0.9, 0)
    assert ids("limit_050", "train") == train[:50] and ids("limit_120", "train") == train[:120]
    assert ids("limit_050", "validation") == ids("limit_120", "validation") == validation
    small = dest / "limit_050" / "data" / "validation-00000-of-00001.parquet"
    large = dest / "limit_120" / "data" / "validation-00000-of-00001.parquet"
    assert small.stat().st_ino == large.stat().st_ino  # linked, not written twice


def test_a_changed_dataset_or_other_options_are_refused(source, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    dest = tmp_path / "out"
    export_shards(copy, dest, ShardOptions("webdataset", shard_mb=0.1))
    with pytest.raises(ExportError, match="other options"):
        export_shards(copy, dest, ShardOptions("webdataset", shard_mb=0.2))
    DatasetWriter(copy, durable=False).write_sample(
        "s9999", np.zeros((12, 12, 3), np.float32), np.ones((12, 12), np.float32))
    with pytest.raises(ExportError, match="dataset changed"):
        export_shards(copy, dest, ShardOptions("webdataset", shard_mb=0.1))


def test_a_damaged_sample_is_left_out_and_reported(tmp_path):
    root = make_shard_dataset(tmp_path / "ds", 6)
    victim = sorted(p.stem for p in (root / "meta").glob("*.json"))[2]
    path = root / "alpha" / f"{victim}.png"
    path.write_bytes(path.read_bytes()[:-20])  # truncated
    result = export_shards(root, tmp_path / "out", ShardOptions("hf", split=1.0))
    assert len(result.failures) == 1 and result.failures[0].startswith(victim)
    assert "truncated" in result.failures[0]
    record = json.loads((tmp_path / "out" / SHARDS_NAME).read_text())
    assert record["shards"][0]["rows"] == 5


def test_missing_pyarrow_is_named(source, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ExportError, match="pip install pyarrow"):
        export_shards(source, tmp_path / "out", ShardOptions("hf"))
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bad_shard_options_are_refused():
    with pytest.raises(ExportError, match="megabytes"):
        ShardOptions("hf", shard_mb=0).checked()
    with pytest.raises(ExportError, match="choose one of hf, webdataset"):
        ShardOptions("am2k").checked()


# --------------------------------------------------------------------------------------------
# webdataset
# --------------------------------------------------------------------------------------------

def test_webdataset_reads_every_sample_with_its_files(source, accepted_ids, wds_export):
    import webdataset as wds

    shards = sorted(str(p) for p in (wds_export / "data").glob("*.tar"))
    assert len(shards) > 5
    sums = _checksums(wds_export)
    for shard in shards:
        assert sums[f"data/{Path(shard).name}"] == _sha256(Path(shard))
        assert Path(shard).stat().st_size < 0.1e6 + 30_000
    seen = []
    for sample in wds.WebDataset(shards, shardshuffle=False):
        sample_id = id_from_key(sample["__key__"])
        seen.append(sample_id)
        assert sample["fg.png"] == (source / "fg" / f"{sample_id}.png").read_bytes()
        assert sample["alpha.png"] == (source / "alpha" / f"{sample_id}.png").read_bytes()
        assert json.loads(sample["json"])["id"] == sample_id
    assert sorted(seen) == accepted_ids  # ids with dots too (keys escape them)


def test_sample_keys_escape_dots_reversibly():
    assert sample_key("a.b.c") == "a%2Eb%2Ec" and "." not in sample_key("a.b.c")
    assert id_from_key(sample_key("s0003.v2")) == "s0003.v2"


def test_cli_writes_both_shard_layouts_and_refuses_composite_options(source, tmp_path):
    for layout in ("hf", "webdataset"):
        out, err = io.StringIO(), io.StringIO()
        code = main(["dataset", "export", str(source), str(tmp_path / layout), "--layout",
                     layout, "--shard-mb", "0.5", "--limit", "100"], stdout=out, stderr=err)
        assert code == EXIT_OK, err.getvalue()
        assert "limit_100: 100 training and 20 validation" in out.getvalue()
        assert (tmp_path / layout / "limit_100" / CHECKSUMS_NAME).is_file()
    out, err = io.StringIO(), io.StringIO()
    code = main(["dataset", "export", str(source), str(tmp_path / "x"), "--layout", "hf",
                 "--per-fg", "3"], stdout=out, stderr=err)
    assert code == EXIT_USAGE and "leave out --per-fg" in err.getvalue()
    code = main(["dataset", "export", str(source), str(tmp_path / "x"), "--layout", "hf",
                 "--shard-mb", "0"], stdout=out, stderr=io.StringIO())
    assert code == EXIT_USAGE
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("layout", ["hf", "webdataset"])
def test_the_export_carries_the_provenance_documents(source, layout, tmp_path):
    """The sharded exports keep what made each sample: the documents each sample's
    provenance reference names are copied beside the shards."""
    dest = tmp_path / "export"
    export_shards(source, dest, ShardOptions(layout, shard_mb=1))
    documents = sorted((source / "provenance").glob("*.json"))
    assert documents
    for document in documents:
        assert (dest / "provenance" / document.name).read_bytes() == document.read_bytes()
    referenced = {json.loads(path.read_text())["provenance"]["file"] for path in (source / "meta").glob("*.json")
                  if "provenance" in json.loads(path.read_text())}
    assert referenced and all((dest / name).is_file() for name in referenced)
