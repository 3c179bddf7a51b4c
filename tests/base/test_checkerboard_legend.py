"""One checkerboard and one legend for red, shared by the error-map panel and contact sheets."""
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.sheet import COLUMN_LEGENDS, COLUMN_TITLES, SheetRow, contact_sheet
from comfyui_ld_portrait.base.errormap import (ALPHA_BAR_H_TITLE, CHECKER_SHADES, ERROR_RED,
                                               PANEL_TITLES, RED_LEGEND, checker_cell,
                                               checker_composite, checkerboard, error_panel)


def test_checkerboard_cells_by_hand():
    board = checkerboard(5, 7, cell=2)
    assert board.shape == (5, 7, 3) and board.dtype == np.float32
    assert np.array_equal(board[..., 0], board[..., 2])  # grey
    dark, light = CHECKER_SHADES
    expected_first_row = [dark, dark, light, light, dark, dark, light]
    np.testing.assert_allclose(board[0, :, 0], expected_first_row)
    np.testing.assert_allclose(board[2, :, 0], [light, light, dark, dark, light, light, dark])
    np.testing.assert_allclose(board[4, :, 0], expected_first_row)
    with pytest.raises(ValueError, match="cell must be a whole number >= 1"):
        checkerboard(4, 4, cell=0)


def test_checker_composite_shows_the_board_where_alpha_is_zero():
    rgb = np.zeros((48, 96, 3), np.float32)
    rgb[..., 0] = 1.0
    alpha = np.zeros((48, 96), np.float32)
    alpha[:, 48:] = 1.0
    picture = checker_composite(rgb, alpha)
    cell = checker_cell(48, 96)
    assert cell == 4  # 1/24 of the short side, at least 4
    np.testing.assert_array_equal(picture[:, :48], checkerboard(48, 96, cell)[:, :48])
    assert np.all(picture[:, 48:] == [1.0, 0.0, 0.0])


def test_panel_and_sheet_share_the_red_legend():
    assert RED_LEGEND in ALPHA_BAR_H_TITLE
    assert ALPHA_BAR_H_TITLE in PANEL_TITLES
    column = COLUMN_TITLES.index("alpha-bar_h")
    assert COLUMN_LEGENDS[column] == RED_LEGEND and ALPHA_BAR_H_TITLE.startswith("alpha-bar_h")
    assert ERROR_RED == (1.0, 0.0, 0.0)


def _legend_red_pixels(picture: np.ndarray) -> int:
    """Pixels of strongly red text (anti-aliased letters on a dark box)."""
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    return int(np.count_nonzero((r > 0.6) & (g < 0.25) & (b < 0.25)))


def test_the_panel_writes_the_legend_in_red():
    rgb = np.full((128, 640, 3), 0.5, np.float32)
    alpha = np.ones((128, 640), np.float32)
    changed = np.zeros((128, 640), bool)  # no red pixels in the pictures themselves
    panel = error_panel(rgb, alpha, alpha, changed, labels=True, gap=0)
    titles = [panel[:40, i * 640:(i + 1) * 640] for i in range(4)]
    red = [_legend_red_pixels(title) for title in titles]
    assert red[1] > 20 and red[2] > 20  # alpha-bar_h and error map carry the legend
    assert red[0] == 0 and red[3] == 0


def _rows(count=2, size=64):
    rows = []
    for index in range(count):
        rgb = np.zeros((size, size, 3), np.float32)
        rgb[..., 1] = 1.0  # a green portrait
        raw = np.zeros((size, size), np.float32)
        raw[:, size // 2:] = 1.0
        raw[10:14, 40:44] = 0.0  # a pinhole refinement fills
        alpha = raw.copy()
        alpha[10:14, 40:44] = 1.0
        rows.append(SheetRow(f"p{index}", rgb, raw, rgb, alpha, note="kept", kept=True))
    return rows


def test_contact_sheet_has_a_raw_alpha_column_and_a_checkered_raw_composite():
    cell, gap = 64, 8
    sheet = contact_sheet(_rows(), cell=cell, gap=gap)
    assert len(COLUMN_TITLES) == 5 and COLUMN_TITLES[1] == "raw alpha"
    assert sheet.shape[1] == gap + 5 * (cell + gap)
    title_line, caption = 21, 18  # cell 64 -> text scale 0.35 (see test_sheet.py)
    header = title_line + caption  # column titles, then the legend line
    top = header + caption
    raw_column = sheet[top:top + cell, gap + (cell + gap):gap + (cell + gap) + cell].astype(int)
    assert (raw_column[:, :30] == 0).all() and (raw_column[20:, 34:] == 255).all()
    assert (raw_column[10:14, 40:44] == 0).all()  # the pinhole, as decoded
    refined_column = sheet[top:top + cell, gap + 3 * (cell + gap):gap + 3 * (cell + gap) + cell]
    assert (refined_column[10:14, 40:44] == 255).all()
    composite = sheet[top:top + cell, gap:gap + cell].astype(int)
    board = np.round(checkerboard(cell, cell, checker_cell(cell, cell)) * 255).astype(int)
    np.testing.assert_array_equal(composite[:, :30], board[:, :30])  # the same checkerboard
    legend_line = sheet[title_line:header].astype(np.float32) / 255
    bar_h_left = gap + 2 * (cell + gap)
    assert _legend_red_pixels(legend_line[:, bar_h_left:bar_h_left + cell]) > 10
    assert _legend_red_pixels(legend_line) == _legend_red_pixels(
        legend_line[:, bar_h_left:bar_h_left + cell])  # only under alpha-bar_h


def test_contact_sheet_and_dataset_sheet_sizes_are_bounded():
    from comfyui_ld_portrait.dataset.sheet import MAX_CELL, check_sheet_size, sheet_size

    with pytest.raises(ValueError, match=f"cell 100000 is too large: the limit is {MAX_CELL}"):
        contact_sheet(_rows(1), cell=100000)
    with pytest.raises(ValueError, match="cell 100000 is too large"):
        sheet_size(4, cell=100000)
    with pytest.raises(ValueError, match=r"megapixels\); the limit is 100 megapixels"):
        check_sheet_size(*sheet_size(2000, cell=2048, columns=4))
    with pytest.raises(ValueError, match="megapixels"):
        contact_sheet(_rows(1) * 400, cell=MAX_CELL)
