"""dataset_stats, `ld-portrait dataset stats|sheet`, and the Figure-5 style dataset sheet."""
import io
import json

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.cli import app as cli
from comfyui_ld_portrait.dataset.sheet import (SheetTile, choose_samples, composite_sheet,
                                              dataset_sheet, sheet_size)
from comfyui_ld_portrait.dataset import DatasetError, DatasetWriter, dataset_stats

H, W = 48, 40
# (id, attributes, rejected, reasons, refinement changed_fraction)
SAMPLES = [
    ("000000", {"hair": "red", "age": "young"}, False, None, 0.0),
    ("000001", {"hair": "red", "age": "senior"}, False, None, 0.1),
    ("000002", {"hair": "black", "age": "young"}, False, None, 0.2),
    ("000003", {"hair": "red", "age": "young"}, False, None, 0.3),   # repeats 000000's combo
    ("000004", {"hair": "blonde", "age": None}, False, None, 0.4),
    ("000005", {"hair": "red", "age": "young"}, True, ["multiple_people"], 0.5),
    ("000006", {"hair": "grey", "age": "senior"}, True, ["multiple_people", "cut_off_top"], 0.6),
    ("000007", {"hair": "black", "age": "young"}, True, None, 0.7),  # no verdict reasons
]


def _images(seed):
    rng = np.random.default_rng(seed)
    fg = rng.uniform(0, 1, (H, W, 3)).astype(np.float32)
    alpha = np.zeros((H, W), np.float32)
    alpha[12:, 8:32] = 1.0
    alpha[11, 8:32] = 0.5
    return fg, alpha


@pytest.fixture()
def root(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter(root, durable=False)
    for number, (sample_id, attributes, rejected, reasons, changed) in enumerate(SAMPLES):
        fg, alpha = _images(number)
        meta = {"attributes": attributes, "prompt": f"prompt {attributes['hair']}",
                "models": "sdxl", "refinement": {"height": H, "width": W,
                                                 "changed_fraction": changed,
                                                 "pinholes_filled": number % 2}}
        if reasons is not None:
            meta["verdict"] = {"keep": False, "reasons": reasons}
        elif not rejected:
            meta["verdict"] = {"keep": True, "reasons": []}
        writer.write_sample(sample_id, fg, alpha, meta=meta, rejected=rejected,
                            store_images=not rejected)
    # A 96x64 sample, an interrupted write (image, no meta) and an unreadable meta file.
    fg = np.zeros((96, 64, 3), np.float32)
    writer.write_sample("big", fg, np.ones((96, 64), np.float32), meta={"attributes": {"hair": "red"}})
    (root / "fg" / "killed.png").write_bytes(b"\x89PNG partial")
    (root / "meta" / "broken.json").write_text("{not json")
    return root


def test_counts_sizes_and_reject_reasons(root):
    stats = dataset_stats(root)
    assert (stats.accepted, stats.rejected) == (7, 3)  # broken.json counts as a meta file
    assert stats.unreadable_meta == 1 and stats.incomplete == 1
    assert stats.manifest_lines == 6
    assert stats.sizes == {f"{W}x{H}": 5, "64x96": 1}
    assert stats.reject_reasons == {"multiple_people": 2, "cut_off_top": 1, "(no verdict)": 1}


def test_attribute_histograms_and_coverage(root):
    stats = dataset_stats(root)
    hair = stats.attributes["hair"]
    assert hair["values"] == {"red": {"accepted": 4, "rejected": 1},
                              "black": {"accepted": 1, "rejected": 1},
                              "blonde": {"accepted": 1, "rejected": 0},
                              "grey": {"accepted": 0, "rejected": 1}}
    assert list(hair["values"])[:3] == ["red", "black", "blonde"]  # most common first
    assert hair["samples"] == 6 and hair["distinct"] == 3 and hair["only_rejected"] == ["grey"]
    age = stats.attributes["age"]
    assert age["values"]["young"] == {"accepted": 3, "rejected": 2}
    assert age["values"]["(none)"] == {"accepted": 1, "rejected": 0}  # null = empty option
    combos = stats.combinations
    # Accepted combinations: red/young x2, red/senior, black/young, blonde/none, red (big).
    assert combos["samples"] == 6 and combos["distinct"] == 5 and combos["repeated"] == 1
    assert combos["most_common"] == 2
    assert combos["distinct_prompts"] == 3 and combos["prompt_samples"] == 5
    assert stats.models == {"sdxl": 5}


def test_refinement_summaries(root):
    refinement = dataset_stats(root).refinement
    changed = refinement["changed_fraction"]
    assert changed["count"] == 5
    assert changed["median"] == pytest.approx(0.2)
    assert changed["mean"] == pytest.approx(0.2)
    assert changed["max"] == pytest.approx(0.4) and changed["nonzero"] == 4
    assert "height" not in refinement and list(refinement)[0] == "changed_fraction"
    assert refinement["pinholes_filled"]["nonzero"] == 2  # samples 1 and 3


def test_stats_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        dataset_stats(tmp_path / "nothing")


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_stats_command_text_and_json(root):
    code, out, err = _run(["dataset", "stats", str(root), "--top", "2"])
    assert code == 0, err
    assert "7 accepted, 3 rejected" in out and "1 incomplete" in out
    assert "multiple_people: 2" in out and "red: 4  (20% rejected)" in out
    assert "never accepted: grey" in out and "... 1 more value(s)" in out
    assert "changed_fraction" in out and "unreadable meta" in out
    code, out, _ = _run(["dataset", "stats", str(root), "--json"])
    assert code == 0
    data = json.loads(out)
    assert data["attributes"]["hair"]["values"]["red"] == {"accepted": 4, "rejected": 1}
    code, _, err = _run(["dataset", "stats", str(root / "missing")])
    assert code == 1 and "no such dataset folder" in err


# --- sheet ---------------------------------------------------------------------------------

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
