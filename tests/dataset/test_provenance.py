"""Provenance documents (dataset/provenance.py): one content-addressed copy per dataset,
written atomically before the meta that refers to it, checked when read."""
import hashlib
import json
import os

import numpy as np
import pytest

from comfyui_ld_portrait.dataset import DatasetError, DatasetWriter, verify
from comfyui_ld_portrait.dataset.provenance import (GRAPH_KIND, ProvenanceError,
                                                    provenance_document, read_provenance,
                                                    sample_provenance, settings_document,
                                                    store_provenance)

GRAPH = {"9": {"class_type": "LDPSaveDataset", "inputs": {"sample_index": 4}},
         "10": {"class_type": "KSampler", "inputs": {"seed": 2 ** 60, "cfg": 6.5}}}


def _sample(writer, sample_id, document):
    fg = np.full((8, 6, 3), 0.5, np.float32)
    alpha = np.ones((8, 6), np.float32)
    return writer.write_sample(sample_id, fg, alpha, meta={"seed": 1}, provenance=document)


def test_equal_content_gives_equal_bytes_and_hash_whatever_the_key_order():
    first = provenance_document(GRAPH_KIND, GRAPH)
    second = provenance_document(GRAPH_KIND, dict(reversed(list(GRAPH.items()))))
    assert first.payload == second.payload and first.sha256 == second.sha256
    assert first.sha256 == hashlib.sha256(first.payload).hexdigest()
    assert json.loads(first.payload) == GRAPH  # large seeds survive exactly
    assert first.reference() == {"kind": GRAPH_KIND, "sha256": first.sha256,
                                 "file": f"provenance/{first.sha256}.json"}
    assert provenance_document(GRAPH_KIND, {**GRAPH, "x": {}}).sha256 != first.sha256
    with pytest.raises(ValueError):
        provenance_document(GRAPH_KIND, {"bad": object()})


def test_many_samples_share_one_stored_copy_written_before_their_meta(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    document = provenance_document(GRAPH_KIND, GRAPH)
    for sample_id in ("000001", "000002", "000003"):
        _sample(writer, sample_id, document)
    files = list((writer.root / "provenance").iterdir())
    assert [f.name for f in files] == [f"{document.sha256}.json"]
    assert files[0].read_bytes() == document.payload
    meta = json.loads((writer.root / "meta" / "000002.json").read_text())
    assert meta["provenance"] == document.reference()
    assert read_provenance(writer.root, meta["provenance"]) == (GRAPH_KIND, GRAPH)
    assert verify(writer.root).ok
    # another writer (a second ComfyUI) storing the same document changes nothing
    other = DatasetWriter(tmp_path / "ds")
    before = files[0].stat().st_mtime_ns
    _sample(other, "000004", document)
    assert files[0].stat().st_mtime_ns == before
    assert not [p for p in (writer.root / "provenance").iterdir() if p.name.startswith(".")]


def test_a_damaged_copy_is_written_again(tmp_path):
    document = provenance_document(GRAPH_KIND, GRAPH)
    path = store_provenance(tmp_path, document)
    path.write_text("{}")
    assert store_provenance(tmp_path, document).read_bytes() == document.payload


def test_callers_cannot_fake_the_reference(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    with pytest.raises(ValueError, match="provenance"):
        writer.write_sample("000001", np.zeros((4, 4, 3)), np.ones((4, 4)),
                            meta={"provenance": {"sha256": "0" * 64}})


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_provenance_folder_linked_outside_the_root_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    writer = DatasetWriter(tmp_path / "ds")
    os.symlink(outside, writer.root / "provenance")
    with pytest.raises(DatasetError, match="outside the dataset root"):
        _sample(writer, "000001", provenance_document(GRAPH_KIND, GRAPH))
    assert list(outside.iterdir()) == []
    assert not (writer.root / "meta" / "000001.json").exists()


def test_sample_provenance_finds_rejected_samples_and_settings(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    settings = settings_document("refine", {"param": ["reach=3"]}, {"refine_params": {"reach": 3}})
    writer.write_sample("a", np.zeros((4, 4, 3)), np.ones((4, 4)), rejected=True,
                        store_images=False, provenance=settings)
    found = sample_provenance(writer.root, "a")
    assert found.kind == "ld-portrait_settings" and found.meta["status"] == "rejected"
    assert found.content == {"command": "refine", "command_line": {"param": ["reach=3"]},
                             "parameters": {"refine_params": {"reach": 3}}}
    with pytest.raises(ProvenanceError, match="no complete sample"):
        sample_provenance(writer.root, "b")
    with pytest.raises(ProvenanceError):
        sample_provenance(writer.root, "../x")
    with pytest.raises(ProvenanceError, match="not a reference"):
        read_provenance(writer.root, {"sha256": "../../etc/passwd"})


def test_verify_reports_a_missing_document(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    document = provenance_document(GRAPH_KIND, GRAPH)
    _sample(writer, "000001", document)
    _sample(writer, "000002", document)
    (writer.root / document.relative_path).unlink()
    problems = verify(writer.root).problems
    assert [(p.kind, p.sample_id) for p in problems] == [("missing_file", "000001"),
                                                          ("missing_file", "000002")]
    assert document.relative_path in problems[0].detail
