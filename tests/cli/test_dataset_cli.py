"""`ld-portrait dataset verify|stats` on a folder that is not a dataset."""
from __future__ import annotations

import io

import pytest

from comfyui_ld_portrait.cli import app as cli


@pytest.mark.parametrize("action", ["verify", "stats"])
def test_a_folder_that_is_not_a_dataset_is_said_so_with_exit_1(tmp_path, action):
    folder = tmp_path / "holiday_photos"
    folder.mkdir()
    (folder / "beach.png").write_bytes(b"not a dataset")
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["dataset", action, str(folder)], stdout=out, stderr=err)
    assert code == 1
    assert "not a dataset" in err.getvalue() and "consistent" not in out.getvalue()
    assert sorted(p.name for p in folder.iterdir()) == ["beach.png"]  # nothing written


def test_dataset_without_action_prints_its_actions():
    out = io.StringIO()
    assert cli.main(["dataset"], stdout=out, stderr=io.StringIO()) == 2
    assert all(action in out.getvalue() for action in ("verify", "stats", "sheet"))
