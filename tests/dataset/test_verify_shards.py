"""`dataset verify` on the sharded exports: finished, intact shards pass; a damaged,
missing or unfinished shard, a wrong checksum line and a leftover temporary file are named."""
from __future__ import annotations

import io
import json
import shutil

import pytest

from comfyui_ld_portrait.cli.app import main
from comfyui_ld_portrait.cli.common import EXIT_FAILED, EXIT_OK
from comfyui_ld_portrait.dataset import verify
from comfyui_ld_portrait.dataset.export_shards import CHECKSUMS_NAME, SHARDS_NAME, ShardOptions, export_shards
from helpers.shard_samples import make_shard_dataset


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    source = make_shard_dataset(tmp_path_factory.mktemp("verify_shards") / "dataset", 60)
    out = {}
    for layout in ("hf", "webdataset"):
        dest = tmp_path_factory.mktemp(layout) / "export"
        result = export_shards(source, dest, ShardOptions(layout, shard_mb=0.005, limits=(20, 40)))
        assert not result.failures and not result.interrupted
        out[layout] = dest
    return out


def _copy(export, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(export, dest)
    return dest


def _first_shard(dest):
    record = json.loads((dest / SHARDS_NAME).read_text())
    return record, record["shards"][0]


@pytest.mark.parametrize("layout", ["hf", "webdataset"])
def test_a_finished_export_is_consistent_and_counts_its_rows(exports, layout):
    report = verify(exports[layout])
    assert report.ok, report.to_text()
    rows = 0
    for subset in ("limit_20", "limit_40"):
        record = json.loads((exports[layout] / subset / SHARDS_NAME).read_text())
        rows += sum(e["rows"] for e in record["shards"])
    assert report.accepted == rows >= 40


@pytest.mark.parametrize("layout", ["hf", "webdataset"])
def test_damaged_missing_and_unfinished_shards_are_named(exports, layout, tmp_path):
    root = _copy(exports[layout], tmp_path)
    dest = root / "limit_40"
    record, first = _first_shard(dest)
    assert len(record["shards"]) >= 4
    shard = dest / first["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    shard.write_bytes(bytes(data))
    second = dest / record["shards"][1]["file"]
    second.unlink()
    (dest / "data" / ".train-tmp-123").write_bytes(b"partial")
    report = verify(root)
    kinds = {(p.kind, p.sample_id) for p in report.problems}
    assert ("checksum_mismatch", "limit_40/" + first["file"]) in kinds
    assert ("missing_file", "limit_40/" + record["shards"][1]["file"]) in kinds
    assert any(kind == "temporary_file" for kind, _ in kinds)
    assert not report.ok
    # An unfinished shard (the export was interrupted) and a disagreeing checksum line.
    record["shards"][2]["sha256"] = None
    (dest / SHARDS_NAME).write_text(json.dumps(record))
    sums = (dest / CHECKSUMS_NAME).read_text().replace(record["shards"][3]["sha256"], "0" * 64)
    (dest / CHECKSUMS_NAME).write_text(sums)
    kinds = {(p.kind, p.sample_id) for p in verify(root).problems}
    assert ("incomplete_shard", "limit_40/" + record["shards"][2]["file"]) in kinds
    assert ("checksum_list_mismatch", "limit_40/" + record["shards"][3]["file"]) in kinds


def test_the_command_exits_1_naming_the_damage_and_0_when_intact(exports, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["dataset", "verify", str(exports["hf"])], stdout=out, stderr=err) == EXIT_OK
    assert "no problems found" in out.getvalue()
    dest = _copy(exports["hf"], tmp_path)
    (dest / "limit_20" / _first_shard(dest / "limit_20")[1]["file"]).write_bytes(b"not a shard")
    out = io.StringIO()
    assert main(["dataset", "verify", str(dest), "--repair"], stdout=out, stderr=err) == EXIT_FAILED
    text = out.getvalue()
    assert "size_mismatch" in text and "limit_20/" in text and "run the same export again" in text
