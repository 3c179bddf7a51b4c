"""`ld-portrait dataset export` and dataset/export.py: layouts, composites, subsets, errors."""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.cli.app import main
from comfyui_ld_portrait.cli.common import EXIT_OK, EXIT_USAGE
from comfyui_ld_portrait.dataset import DatasetWriter
from comfyui_ld_portrait.dataset.export import (SETTINGS_NAME, SPLIT_NAME, ExportError,
                                                ExportOptions, export_dataset, parse_limits)

# Odd and unequal sizes on purpose; 6 accepted samples and one rejected that must not appear.
SIZES = {"a_00": (41, 37), "b_01": (36, 52), "c_02": (29, 29), "d_03": (50, 33),
         "e_04": (23, 45), "f_05": (40, 40)}


def _sample(seed: int, height: int, width: int):
    """A smooth colour field and an alpha with an opaque ellipse fading out over a few pixels
    (a fade made with a distance transform, not with the trimap code under test)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fg = np.stack([(x / width), (y / height), np.full_like(x, rng.uniform())], -1)
    inside = (((y - height / 2) / (height / 3)) ** 2 + ((x - width / 2) / (width / 4)) ** 2) <= 1
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3)
    alpha = np.clip(1.0 - distance / 4.0, 0.0, 1.0).astype(np.float32)
    return fg.astype(np.float32), alpha


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source") / "dataset"
    writer = DatasetWriter(root, durable=False)
    for number, (sample_id, (height, width)) in enumerate(SIZES.items()):
        fg, alpha = _sample(number, height, width)
        writer.write_sample(sample_id, fg, alpha, meta={"seed": number})
    fg, alpha = _sample(99, 30, 30)
    writer.write_sample("z_rejected", fg, alpha, meta={"seed": 99}, rejected=True)
    return root


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(["dataset", "export", *map(str, argv)], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    assert image.dtype == np.uint8, path
    return image[..., ::-1].astype(np.float64) / 255 if image.ndim == 3 else image / 255.0


def _stems(folder: Path, suffix: str) -> list[str]:
    return sorted(p.stem for p in folder.iterdir() if p.suffix == f".{suffix}")


def _check_composites(image_dir, fg_dir, bg_dir, mask_dir, image_suffix, fg_name=None):
    """Every composite equals F * alpha + B * (1 - alpha) within 1/255 (PNG) and returns
    the largest error."""
    worst = 0.0
    for image_path in sorted(image_dir.glob(f"*.{image_suffix}")):
        stem = image_path.stem
        source = fg_name(stem) if fg_name else stem
        image = _read(image_path)
        fg = _read(fg_dir / f"{source}.png")
        alpha = _read(mask_dir / f"{source}.png")[..., None]
        bg = _read(bg_dir / f"{stem}.png")
        assert image.shape == fg.shape == bg.shape
        worst = max(worst, float(np.abs(image - (fg * alpha + bg * (1 - alpha))).max()))
    return worst


def test_am2k_png_layout_counts_names_ranges_and_composites(dataset_root, tmp_path):
    dest = tmp_path / "am2k"
    code, out, err = _run(dataset_root, dest, "--layout", "am2k", "--per-fg", 2, "--split",
                          0.67, "--image-format", "png")
    assert code == EXIT_OK, err
    record = json.loads((dest / SPLIT_NAME).read_text())
    train, validation = record["train"], record["validation"]
    assert len(train) == 4 and len(validation) == 2
    assert sorted(train + validation) == sorted(SIZES)  # the rejected sample is not exported
    expected_train = sorted(f"{i}_{k}" for i in train for k in range(2))
    for kind in ("original", "mask", "fg", "bg"):
        assert _stems(dest / "train" / kind, "png") == expected_train, kind
    expected_val = sorted(f"{i}_{k}" for i in validation for k in range(2))
    for kind in ("original", "mask", "trimap"):
        assert _stems(dest / "validation" / kind, "png") == expected_val, kind
    for stem in expected_val:
        trimap = cv2.imread(str(dest / "validation" / "trimap" / f"{stem}.png"),
                            cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(dest / "validation" / "mask" / f"{stem}.png"),
                          cv2.IMREAD_UNCHANGED)
        assert trimap.ndim == 2 and mask.ndim == 2 and trimap.shape == mask.shape
        assert set(np.unique(trimap)) <= {0, 128, 255}
        soft = (mask > 0) & (mask < 255)
        assert soft.any() and (trimap[soft] == 128).all()  # every soft pixel is unknown
        assert (trimap[mask == 0] != 255).all() and (trimap[mask == 255] != 0).all()
        height, width = SIZES[stem.rsplit("_", 1)[0]]
        assert mask.shape == (height, width)
    worst = _check_composites(dest / "train" / "original", dest / "train" / "fg",
                              dest / "train" / "bg", dest / "train" / "mask", "png")
    assert worst <= 1 / 255 + 1e-9
    # The two composites of one foreground use different backgrounds.
    first = train[0]
    assert not np.array_equal(_read(dest / "train" / "bg" / f"{first}_0.png"),
                              _read(dest / "train" / "bg" / f"{first}_1.png"))
    assert "4 training and 2 validation" in out


def test_jpeg_originals_stay_close_to_the_exact_composite(dataset_root, tmp_path):
    """AM-2K ships JPEG originals: the lossy error is bounded separately from the PNG check."""
    dest = tmp_path / "am2k_jpg"
    export_dataset(dataset_root, dest, ExportOptions("am2k", split=1.0))
    originals = sorted((dest / "train" / "original").glob("*.jpg"))
    assert len(originals) == len(SIZES)
    assert not list((dest / "train" / "original").glob("*.png"))
    errors = []
    for path in originals:
        image = _read(path)
        fg = _read(dest / "train" / "fg" / f"{path.stem}.png")
        alpha = _read(dest / "train" / "mask" / f"{path.stem}.png")[..., None]
        bg = _read(dest / "train" / "bg" / f"{path.stem}.png")
        errors.append(np.abs(image - (fg * alpha + bg * (1 - alpha))))
    errors = np.concatenate([e.ravel() for e in errors])
    assert errors.mean() < 3 / 255      # quality 95 on smooth small images: about 1/255
    assert np.percentile(errors, 99) < 16 / 255


def test_p3m_layout_uses_its_folder_names(dataset_root, tmp_path):
    dest = tmp_path / "p3m"
    code, _, err = _run(dataset_root, dest, "--layout", "p3m", "--split", 0.67)
    assert code == EXIT_OK, err
    record = json.loads((dest / SPLIT_NAME).read_text())
    assert _stems(dest / "train" / "blurred_image", "jpg") == sorted(record["train"])
    for kind in ("mask", "fg", "bg"):
        assert _stems(dest / "train" / kind, "png") == sorted(record["train"])
    val = dest / "validation" / "P3M-500-P"
    assert _stems(val / "blurred_image", "jpg") == sorted(record["validation"])
    for kind in ("mask", "trimap"):
        assert _stems(val / kind, "png") == sorted(record["validation"])


def test_comp1k_layout_and_name_lists(dataset_root, tmp_path):
    dest = tmp_path / "comp1k"
    code, _, err = _run(dataset_root, dest, "--layout", "comp1k", "--per-fg", 3, "--split",
                        0.67)
    assert code == EXIT_OK, err
    record = json.loads((dest / SPLIT_NAME).read_text())
    for folder, ids, lists in (("Training_set", record["train"], "training"),
                               ("Test_set", record["validation"], "test")):
        base = dest / folder
        fg_names = (base / f"{lists}_fg_names.txt").read_text().split()
        bg_names = (base / f"{lists}_bg_names.txt").read_text().split()
        assert fg_names == [f"{i}.png" for i in ids]               # export order
        assert bg_names == [f"{i}_{k}.png" for i in ids for k in range(3)]  # fg-major
        assert sorted(p.name for p in (base / "fg").iterdir()) == sorted(fg_names)
        assert sorted(p.name for p in (base / "alpha").iterdir()) == sorted(fg_names)
        assert sorted(p.name for p in (base / "bg").iterdir()) == sorted(bg_names)
        assert sorted(p.name for p in (base / "merged").iterdir()) == sorted(bg_names)
        worst = _check_composites(base / "merged", base / "fg", base / "bg", base / "alpha",
                                  "png", fg_name=lambda stem: stem.rsplit("_", 1)[0])
        assert worst <= 1 / 255 + 1e-9
    trimaps = sorted(p.name for p in (dest / "Test_set" / "trimaps").iterdir())
    assert trimaps == sorted(f"{i}_{k}.png" for i in record["validation"] for k in range(3))
    assert not (dest / "Training_set" / "trimaps").exists()


def test_nested_subsets_are_prefixes_with_the_same_validation(dataset_root, tmp_path):
    dest = tmp_path / "nested"
    code, out, err = _run(dataset_root, dest, "--layout", "comp1k", "--split", 0.67,
                          "--limit", "4,1,2")
    assert code == EXIT_OK, err
    folders = ["limit_1", "limit_2", "limit_4"]
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == folders
    records = [json.loads((dest / f / SPLIT_NAME).read_text()) for f in folders]
    lists = [(dest / f / "Training_set" / "training_fg_names.txt").read_text().split()
             for f in folders]
    for (small, large), (names_small, names_large) in zip(
            zip(records, records[1:]), zip(lists, lists[1:])):
        assert large["train"][:len(small["train"])] == small["train"]
        assert names_large[:len(names_small)] == names_small
        assert small["validation"] == large["validation"]
    assert [len(r["train"]) for r in records] == [1, 2, 4]
    # Files of a smaller subset are in the larger with the same bytes.
    for small, large in zip(folders, folders[1:]):
        for path in (dest / small).rglob("*.png"):
            twin = dest / large / path.relative_to(dest / small)
            assert twin.read_bytes() == path.read_bytes(), twin
    # The same export without limits has the largest subset's training files.
    whole = tmp_path / "whole"
    export_dataset(dataset_root, whole, ExportOptions("comp1k", split=0.67))
    for path in (whole / "Training_set" / "merged").iterdir():
        assert (dest / "limit_4" / "Training_set" / "merged" / path.name).read_bytes() \
            == path.read_bytes()


def test_deterministic_and_resumable(dataset_root, tmp_path):
    options = ExportOptions("am2k", per_fg=2, seed=7, split=0.67)
    first, second = tmp_path / "first", tmp_path / "second"
    export_dataset(dataset_root, first, options)
    export_dataset(dataset_root, second, options)
    files = sorted(p.relative_to(first) for p in first.rglob("*.*"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.*"))
    for rel in files:
        if rel.name != SETTINGS_NAME:
            assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    # Another seed draws another split or other backgrounds.
    third = tmp_path / "third"
    export_dataset(dataset_root, third, ExportOptions("am2k", per_fg=2, seed=8, split=0.67))
    assert any(not (third / rel).is_file() or (third / rel).read_bytes() != (first / rel)
               .read_bytes() for rel in files if rel.suffix in (".jpg", ".png"))
    # Resume: a deleted file comes back identical; everything else is skipped.
    victim = sorted((first / "train" / "bg").iterdir())[0]
    original = victim.read_bytes()
    victim.unlink()
    result = export_dataset(dataset_root, first, options)
    assert victim.read_bytes() == original
    assert result.counts == {"written": 1, "skipped": 11}
    assert not list(first.rglob(".tmp-*"))


def test_interrupted_run_resumes_to_the_same_files(dataset_root, tmp_path):
    options = ExportOptions("p3m", split=0.67)
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    dest = tmp_path / "stopped"
    result = export_dataset(dataset_root, dest, options, should_stop=stop_after_three)
    assert result.interrupted and result.counts == {"written": 3}
    assert not (dest / SPLIT_NAME).exists()  # written only once a subset is complete
    code, out, err = _run(dataset_root, dest, "--layout", "p3m", "--split", 0.67, "--json")
    assert code == EXIT_OK, err
    summary = json.loads(out)
    assert summary["counts"] == {"skipped": 3, "written": 3} and not summary["interrupted"]
    assert "export: 6/6" in err  # the progress bar's final line
    fresh = tmp_path / "fresh"
    export_dataset(dataset_root, fresh, options)
    for path in fresh.rglob("*.*"):
        if path.name != SETTINGS_NAME:
            assert (dest / path.relative_to(fresh)).read_bytes() == path.read_bytes()


def test_backgrounds_from_a_folder(dataset_root, tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    colours = {(200, 30, 40), (10, 160, 90)}
    for number, colour in enumerate(sorted(colours)):
        cv2.imwrite(str(pictures / f"p{number}.png"),
                    np.full((64, 80, 3), colour[::-1], np.uint8))
    (pictures / "notes.txt").write_text("not a picture")
    dest = tmp_path / "with_folder"
    code, _, err = _run(dataset_root, dest, "--layout", "am2k", "--per-fg", 2, "--split", 1,
                        "--backgrounds", pictures)
    assert code == EXIT_OK, err
    used = set()
    for path in (dest / "train" / "bg").iterdir():
        bg = cv2.imread(str(path))[..., ::-1].reshape(-1, 3)
        assert (bg == bg[0]).all()
        used.add(tuple(int(v) for v in bg[0]))
    assert used == colours  # both pictures are used


@pytest.mark.parametrize("argv, message", [
    (["--layout", "am2k", "--limit", "1,a"], "not one"),
    (["--layout", "am2k", "--limit", "0"], ">= 1"),
    (["--layout", "am2k", "--limit", "2,2"], "different"),
    (["--layout", "am2k", "--limit", "5,6"], "more than the 5 training"),
    (["--layout", "am2k", "--split", "1.5"], "fraction"),
    (["--layout", "am3k"], "invalid choice"),
    (["--layout", "am2k", "--backgrounds", "/nonexistent/pictures"], "no such folder"),
])
def test_bad_arguments(dataset_root, tmp_path, capsys, argv, message):
    dest = tmp_path / "dest"
    code, _, err = _run(dataset_root, dest, *argv)
    assert code == EXIT_USAGE
    assert message in err + capsys.readouterr().err  # argparse writes to the process stderr
    assert not dest.exists()


def test_bad_input_folders(dataset_root, tmp_path):
    not_dataset = tmp_path / "photos"
    not_dataset.mkdir()
    code, _, err = _run(not_dataset, tmp_path / "d1", "--layout", "am2k")
    assert code == EXIT_USAGE and "not an ld-portrait dataset" in err

    empty = tmp_path / "empty"
    (empty / "meta").mkdir(parents=True)
    code, _, err = _run(empty, tmp_path / "d2", "--layout", "am2k")
    assert code == EXIT_USAGE and "no accepted samples" in err

    code, _, err = _run(dataset_root, dataset_root / "exports", "--layout", "am2k")
    assert code == EXIT_USAGE and "inside the dataset" in err
    assert not (dataset_root / "exports").exists()

    code, _, err = _run(dataset_root, dataset_root.parent, "--layout", "am2k")
    assert code == EXIT_USAGE and "contains the dataset" in err

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    code, _, err = _run(dataset_root, foreign, "--layout", "am2k")
    assert code == EXIT_USAGE and "not empty" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]

    previous = tmp_path / "previous"
    assert _run(dataset_root, previous, "--layout", "am2k")[0] == EXIT_OK
    code, _, err = _run(dataset_root, previous, "--layout", "am2k", "--per-fg", 2)
    assert code == EXIT_USAGE and "other options (per_fg)" in err
    other = tmp_path / "other_dataset"
    DatasetWriter(other, durable=False).write_sample("x", *_sample(5, 30, 30))
    code, _, err = _run(other, previous, "--layout", "am2k")
    assert code == EXIT_USAGE and "another dataset" in err


def test_refuses_links_out_of_dest(dataset_root, tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    outside.mkdir()
    options = ExportOptions("am2k", split=1.0)
    export_dataset(dataset_root, dest, options)
    for path in (dest / "train" / "bg").iterdir():
        path.unlink()
    (dest / "train" / "bg").rmdir()
    (dest / "train" / "bg").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ExportError, match="is a link"):
        export_dataset(dataset_root, dest, options)
    assert list(outside.iterdir()) == []


def test_parse_limits():
    assert parse_limits("20000, 1000,5_000") == (1000, 5000, 20000)
    for bad in ("", "1,,2", "-3", "1.5"):
        with pytest.raises(ExportError):
            parse_limits(bad)
