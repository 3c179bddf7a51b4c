"""Uncertain pixels in the dataset tools: the contact sheet shows them in their own
colour with a legend line of their own, and dataset stats summarise their count."""
import numpy as np

from comfyui_ld_portrait.dataset import DatasetWriter, dataset_stats
from comfyui_ld_portrait.dataset.sheet import (COLUMN_LEGENDS, COLUMN_TITLES, COLUMN_UNCERTAIN_LEGENDS,
                                               SheetRow, contact_sheet)
from comfyui_ld_portrait.base.errormap import UNCERTAIN_CYAN, UNCERTAIN_LEGEND

CELL, GAP = 64, 8
TITLE_LINE, CAPTION = 21, 18  # cell 64 -> text scale 0.35 (see test_sheet.py)
CYAN = np.round(np.array(UNCERTAIN_CYAN) * 255).astype(int)


def _row(uncertain: bool) -> SheetRow:
    rgb = np.zeros((CELL, CELL, 3), np.float32)
    rgb[..., 1] = 1.0
    raw = np.zeros((CELL, CELL), np.float32)
    raw[:, CELL // 2:] = 1.0
    raw[20:40, 40:60] = 0.6  # a veil refinement could not judge, kept as decoded
    mask = None
    if uncertain:
        mask = np.zeros((CELL, CELL), bool)
        mask[20:40, 40:60] = True
    return SheetRow("p", rgb, raw, rgb, raw.copy(), note="kept", kept=True, uncertain=mask)


def _cyan_pixels(block: np.ndarray) -> int:
    r, g, b = (block[..., c].astype(int) for c in range(3))
    return int(np.count_nonzero((r < 60) & (g > 120) & (b > 160)))


def test_uncertain_rows_are_cyan_in_alpha_bar_h_with_a_second_legend_line():
    assert COLUMN_UNCERTAIN_LEGENDS[COLUMN_TITLES.index("alpha-bar_h")] == UNCERTAIN_LEGEND
    assert sum(bool(legend) for legend in COLUMN_UNCERTAIN_LEGENDS) == 1
    plain = contact_sheet([_row(False)], cell=CELL, gap=GAP)
    marked = contact_sheet([_row(True)], cell=CELL, gap=GAP)
    # One more header line, for the uncertain legend; nothing else moves.
    assert marked.shape == (plain.shape[0] + CAPTION, plain.shape[1], 3)
    header = TITLE_LINE + 2 * CAPTION
    top = header + CAPTION
    bar_h_left = GAP + 2 * (CELL + GAP)
    cell = marked[top:top + CELL, bar_h_left:bar_h_left + CELL]
    np.testing.assert_array_equal(cell[22:38, 42:58].reshape(-1, 3), np.tile(CYAN, (16 * 16, 1)))
    plain_cell = plain[top - CAPTION:top - CAPTION + CELL, bar_h_left:bar_h_left + CELL]
    assert (plain_cell[22:38, 42:58] == 255).all()  # without the mask: white, semi-transparent
    legend_line = marked[TITLE_LINE + CAPTION:header]
    assert _cyan_pixels(legend_line[:, bar_h_left:bar_h_left + CELL]) > 10
    assert _cyan_pixels(legend_line) == _cyan_pixels(legend_line[:, bar_h_left:bar_h_left + CELL])
    # The red legend line is where it always was.
    np.testing.assert_array_equal(marked[:TITLE_LINE + CAPTION], plain[:TITLE_LINE + CAPTION])
    assert COLUMN_LEGENDS[COLUMN_TITLES.index("alpha-bar_h")]


def test_a_sheet_mixing_rows_with_and_without_masks_draws_both():
    sheet = contact_sheet([_row(True), _row(False)], cell=CELL, gap=GAP)
    header = TITLE_LINE + 2 * CAPTION
    bar_h_left = GAP + 2 * (CELL + GAP)
    rows = [header + index * (CAPTION + CELL + GAP) + CAPTION for index in range(2)]
    cells = [sheet[top:top + CELL, bar_h_left:bar_h_left + CELL] for top in rows]
    assert _cyan_pixels(cells[0]) == 20 * 20 and _cyan_pixels(cells[1]) == 0


def test_dataset_stats_summarise_uncertain_pixels_after_the_repairs(tmp_path):
    writer = DatasetWriter(tmp_path, durable=False)
    fg, alpha = np.zeros((8, 8, 3), np.float32), np.ones((8, 8), np.float32)
    for number, uncertain in enumerate((0, 12, 40)):
        refinement = {"changed_fraction": 0.1, "interior_fixed": 3, "frame_fade_fixed": 0,
                      "uncertain_pixels": uncertain, "uncertain_fraction": uncertain / 64,
                      "band_pixels": 5}
        writer.write_sample(f"s{number}", fg, alpha, meta={"refinement": refinement,
                                                          "verdict": {"keep": True, "reasons": []}})
    refinement = dataset_stats(tmp_path).refinement
    keys = list(refinement)
    assert keys.index("frame_fade_fixed") < keys.index("uncertain_pixels") < keys.index("band_pixels")
    assert keys.index("uncertain_pixels") + 1 == keys.index("uncertain_fraction")
    assert refinement["uncertain_pixels"]["max"] == 40 and refinement["uncertain_pixels"]["nonzero"] == 2
