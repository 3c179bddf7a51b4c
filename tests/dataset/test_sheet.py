"""Contact sheets: the dataset sheet (Figure 5), the refinement contact sheet, size bounds."""
import io

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.cli import app as cli
from comfyui_ld_portrait.dataset.sheet import (SheetTile, choose_samples, composite_sheet,
                                              dataset_sheet, sheet_size)


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_sheet_size_formula_by_hand():
    # cell 64 -> text scale 0.35, header int(28*0.35/0.45) = 21, caption int(24*0.35/0.45) = 18
    assert sheet_size(5, cell=64, columns=3, gap=8) == (21 + 2 * (18 + 64 + 8) + 8,
                                                       8 + 3 * (2 * 64 + 16))
    assert sheet_size(2, cell=64, columns=4, gap=8) == (21 + 90 + 8, 8 + 2 * 144)
    with pytest.raises(ValueError, match="cell must be at least 32"):
        sheet_size(2, cell=16)


def test_sheet_command_writes_a_png_of_the_expected_size(root, tmp_path):
    out_png = tmp_path / "sheets" / "sheet.png"
    code, out, err = _run(["dataset", "sheet", str(root), str(out_png), "--count", "5",
                           "--cell", "64", "--columns", "3", "--seed", "1"])
    assert code == 0, err
    image = cv2.imread(str(out_png), cv2.IMREAD_UNCHANGED)
    assert image.shape == (*sheet_size(5, cell=64, columns=3), 3)
    assert image.shape == (209, 440, 3)
    # Same arguments, same picture; another seed, another picture.
    again = dataset_sheet(root, count=5, seed=1, cell=64, columns=3)
    assert np.array_equal(again, image[..., ::-1])
    assert not np.array_equal(dataset_sheet(root, count=5, seed=2, cell=64, columns=3), again)


def test_sheet_shows_composite_and_alpha_side_by_side():
    fg = np.zeros((64, 64, 3), np.float32)
    fg[..., 1] = 1.0  # green portrait
    alpha = np.zeros((64, 64), np.float32)
    alpha[:, 32:] = 1.0
    background = np.zeros((10, 10, 3), np.float32)
    background[..., 2] = 1.0  # blue background
    sheet = composite_sheet([SheetTile("x", fg, alpha, background)], cell=64, columns=1, gap=8)
    top = 21 + 18  # header + caption
    cell = sheet[top:top + 64, 8:8 + 64].astype(int)
    assert (cell[:, :30] == [0, 0, 255]).all() and (cell[:, 34:] == [0, 255, 0]).all()
    matte = sheet[top:top + 64, 8 + 64 + 8:8 + 128 + 8].astype(int)
    assert (matte[:, :30] == 0).all() and (matte[:, 34:] == 255).all()


def test_choose_samples_is_seeded_and_capped(root):
    accepted = ["000000", "000001", "000002", "000003", "000004", "big", "broken"]
    assert choose_samples(root, 100) == accepted
    picked = choose_samples(root, 3, seed=4)
    assert len(picked) == 3 and set(picked) <= set(accepted) and picked == sorted(picked)
    assert choose_samples(root, 3, seed=4) == picked


def test_sheet_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = _run(["dataset", "sheet", str(tmp_path / "empty"), str(tmp_path / "s.png")])
    assert code == 2 and "no accepted samples" in err
    code, _, err = _run(["dataset", "sheet", str(tmp_path / "empty"), str(tmp_path / "s.jpg")])
    assert code == 2 and "must end in .png" in err
    code, _, err = _run(["dataset", "sheet", str(tmp_path / "nope"), str(tmp_path / "s.png")])
    assert code == 1 and "no such dataset folder" in err


def test_sheet_passes_over_unreadable_samples(root):
    # 7 accepted meta files, one of them unreadable: asking for 7 draws the 6 readable ones.
    sheet = dataset_sheet(root, count=7, cell=32, columns=7)
    assert sheet.shape == (*sheet_size(6, cell=32, columns=7), 3)


def test_sheet_command_refuses_a_huge_cell_before_allocating(root, tmp_path):
    out_png = tmp_path / "huge.png"
    code, _, err = _run(["dataset", "sheet", str(root), str(out_png), "--cell", "100000"])
    assert code == 2 and "cell 100000 is too large: the limit is 2048" in err, err
    assert not out_png.exists()
    code, _, err = _run(["dataset", "sheet", str(root), str(out_png), "--cell", "2048",
                         "--count", "1000", "--columns", "40"])
    assert code == 2 and "megapixels" in err and not out_png.exists(), err
