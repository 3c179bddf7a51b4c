"""cli/queue/jobs.py DatasetProbe: a sample whose meta file is empty or broken is not complete,
so the queue submits it again (as the dataset writer redoes it), and the probe writes nothing."""
from __future__ import annotations

import json

import numpy as np
import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.dataset import DatasetWriter, index_id

from helpers.queue_runs import GRAPH, cli


def _dataset_with_broken_meta(root, broken_text: bytes, *, rejected: bool):
    """Samples 1 (accepted) and 2 (``rejected``?) written by the writer, then the meta file of
    sample 2 replaced by ``broken_text`` (what a power cut or a stray editor leaves)."""
    writer = DatasetWriter(root, durable=False)
    writer.write_sample(index_id(1), np.zeros((4, 4, 3)), np.ones((4, 4)))
    writer.write_sample(index_id(2), np.zeros((4, 4, 3)), np.ones((4, 4)), rejected=rejected)
    meta = root / ("rejected/meta" if rejected else "meta") / f"{index_id(2)}.json"
    assert meta.is_file()
    meta.write_bytes(broken_text)
    return meta


@pytest.mark.parametrize("broken_text", [b"", b"   \n", b'{"id": "0000', b"[1, 2]",
                                         json.dumps({"id": "someone-else"}).encode()],
                         ids=["empty", "blank", "truncated", "not-an-object", "other-id"])
@pytest.mark.parametrize("rejected", [False, True], ids=["accepted", "rejected"])
def test_unusable_meta_file_is_not_complete(tmp_path, broken_text, rejected):
    root = tmp_path / "dataset"
    _dataset_with_broken_meta(root, broken_text, rejected=rejected)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    probe = sq.DatasetProbe(root)
    assert probe.status(index_id(1)) == "accepted"
    assert probe.status(index_id(2)) is None
    assert probe.complete_ids() == {index_id(1)}
    # The writer agrees: it would redo sample 2.
    assert DatasetWriter(root).complete_ids() == {index_id(1)}
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_dry_run_queues_the_sample_with_an_empty_meta_file(tmp_path):
    root = tmp_path / "output" / "ldp_test"
    _dataset_with_broken_meta(root, b"", rejected=False)
    api = tmp_path / "api.json"
    api.write_text(json.dumps(GRAPH))
    # No server is contacted in a dry run; the URL only has to be well formed.
    code, out, err = cli([str(api), "--range", "1:3", "--dataset", str(root), "--server",
                          "http://127.0.0.1:9", "--dry-run"])
    assert code == 0, out + err
    assert "1 job(s) to queue, 1 already complete" in out
