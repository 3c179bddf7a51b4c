"""Record what the Adobe DIM MATLAB evaluation code says about a set of test cases (needs Octave).

Writes, under ``tests/evaluation/fixtures/``:

- ``<case>_pred.png``, ``<case>_truth.png``, ``<case>_trimap.png``: 8-bit gray inputs (small,
  deterministic: regenerated identically by this script);
- ``dim_octave.json``: for every case SAD, MSE, gradient and connectivity exactly as
  ``DIM_evaluation_code/evaluate.m`` reports them (SAD as returned, ``grad / 1000``,
  ``conn / 1000``), computed by GNU Octave running the unmodified ``.m`` files.

The ``.m`` files are read from a git clone of Yaoyi-Li/GCA-Matting (``--gca-git-dir``, a bare
or ordinary git dir) into a temporary folder; nothing of them is copied into this repository.

Run (Debian: ``apt-get install octave octave-image``)::

    python tools/octave_fixtures/make_fixtures.py --gca-git-dir /path/to/GCA-Matting/.git

The tests (tests/evaluation/test_octave_fixtures.py) read the JSON and the PNGs only; they never
need Octave.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "evaluation" / "fixtures"
DIM_FILES = ("compute_sad_loss.m", "compute_mse_loss.m", "compute_gradient_loss.m",
             "compute_connectivity_error.m", "gaussgradient.m")
HEIGHT, WIDTH = 72, 96  # not square, so a transposed axis shows


def _grid():
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    return yy, xx


def _soft_disk(cy, cx, radius, softness):
    yy, xx = _grid()
    distance = np.hypot(yy - cy, xx - cx)
    return np.clip((radius - distance) / softness + 0.5, 0.0, 1.0)


def _band_trimap(truth, width):
    """0/128/255 trimap: unknown within ``width`` px of any 0 < alpha < 1 or 0/1 edge."""
    fg = (truth >= 1.0).astype(np.uint8)
    bg = (truth <= 0.0).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    sure_fg = cv2.erode(fg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    sure_bg = cv2.erode(bg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    trimap = np.full(truth.shape, 128, np.uint8)
    trimap[sure_fg > 0] = 255
    trimap[sure_bg > 0] = 0
    return trimap


def _u8(matte):
    return np.round(np.clip(matte, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (pred, truth, trimap), uint8 [72, 96] each."""
    rng = np.random.default_rng(20240601)
    yy, xx = _grid()
    cases = {}

    truth = _soft_disk(36, 48, 22, 6)
    pred = np.minimum(_u8(truth).astype(np.int32) + 20, 255)  # +20 levels (clipped at 255)
    cases["constant_error"] = (pred.astype(np.uint8), _u8(truth), _band_trimap(truth, 4))

    truth = (xx >= 40).astype(np.float64)
    pred = (xx >= 44).astype(np.float64)
    trimap = np.zeros(truth.shape, np.uint8)
    trimap[:, 40:] = 255
    trimap[:, 30:52] = 128
    cases["step_edge"] = (_u8(pred), _u8(truth), trimap)

    truth = _soft_disk(36, 48, 20, 4)
    pred = _soft_disk(39, 50, 20, 4)
    cases["shifted_disk"] = (_u8(pred), _u8(truth), _band_trimap(truth, 5))

    # Hair-like: a head blob with thin soft strands wandering outward, plus sensor noise.
    truth = _soft_disk(44, 48, 18, 3)
    for _ in range(14):
        angle = rng.uniform(-math.pi, 0.0)
        x, y = 48 + 16 * math.cos(angle), 44 + 16 * math.sin(angle)
        strand = np.zeros(truth.shape, np.float32)
        points = []
        for _step in range(30):
            angle += rng.normal(0.0, 0.25)
            x, y = x + 1.2 * math.cos(angle), y + 1.2 * math.sin(angle)
            points.append((int(round(x * 4)), int(round(y * 4))))
        cv2.polylines(strand, [np.array(points, np.int32)], False, float(rng.uniform(0.4, 1.0)),
                      thickness=2, lineType=cv2.LINE_AA, shift=2)
        truth = np.maximum(truth, strand)
    truth = np.clip(truth, 0.0, 1.0)
    pred = cv2.GaussianBlur(truth, (5, 5), 1.0) + rng.normal(0.0, 0.06, truth.shape)
    pred[truth == 0] *= rng.uniform(0, 1, truth.shape)[truth == 0] < 0.1
    cases["hair_noisy"] = (_u8(pred), _u8(truth), _band_trimap(truth, 3))

    truth = _soft_disk(36, 48, 24, 8)
    pred = 40.0 / 255.0 + truth * (160.0 / 255.0)  # spans only 40..200 of 0..255
    cases["partial_range"] = (_u8(pred), _u8(truth), _band_trimap(truth, 4))

    truth = _soft_disk(30, 40, 16, 10)
    pred = np.clip(truth + rng.normal(0.0, 0.1, truth.shape), 0, 1)
    cases["all_unknown"] = (_u8(pred), _u8(truth), np.full(truth.shape, 128, np.uint8))

    trimap = np.where(truth > 0.5, 255, 0).astype(np.uint8)
    cases["empty_unknown"] = (_u8(pred), _u8(truth), trimap)

    # Two equally large opaque squares, predicted at 0.9 (top right) and 0.7 (bottom left):
    # up to threshold 0.7 they tie for the largest component, and MATLAB keeps the one whose
    # first pixel comes first in column-major order (bottom left); row-major order would keep
    # the other one and give a different error.
    truth = np.zeros((HEIGHT, WIDTH))
    truth[10:30, 60:80] = 1.0
    truth[40:60, 10:30] = 1.0
    pred = truth.copy()
    pred[10:30, 60:80] = 0.9
    pred[40:60, 10:30] = 0.7
    cases["component_tie"] = (_u8(pred), _u8(truth), np.full(truth.shape, 128, np.uint8))

    truth = _soft_disk(36, 48, 20, 6)
    cases["prediction_empty"] = (np.zeros(truth.shape, np.uint8), _u8(truth),
                                 _band_trimap(truth, 4))
    cases["prediction_constant"] = (np.full(truth.shape, 200, np.uint8), _u8(truth),
                                    _band_trimap(truth, 4))
    cases["random_pair"] = (rng.integers(0, 256, truth.shape).astype(np.uint8),
                            rng.integers(0, 256, truth.shape).astype(np.uint8),
                            rng.choice(np.array([0, 128, 255], np.uint8), truth.shape))
    return cases


OCTAVE_DRIVER = r"""
pkg load image
addpath(dim_dir);
fid = fopen(out_file, 'w');
for k = 1:numel(names)
  name = names{k};
  pred = imread(fullfile(fixture_dir, [name '_pred.png']));
  target = imread(fullfile(fixture_dir, [name '_truth.png']));
  target = target(:,:,1);
  trimap = imread(fullfile(fixture_dir, [name '_trimap.png']));
  % Octave's imread returns a two-level 8-bit PNG as logical (MATLAB returns uint8); undo that
  % so the DIM functions see the uint8 0/255 codes they were written for.
  if islogical(pred), pred = uint8(pred) * 255; end
  if islogical(target), target = uint8(target) * 255; end
  if islogical(trimap), trimap = uint8(trimap) * 255; end
  sad = compute_sad_loss(pred, target, trimap);
  mse = compute_mse_loss(pred, target, trimap);
  grad = compute_gradient_loss(pred, target, trimap) / 1000;
  conn = compute_connectivity_error(pred, target, trimap, 0.1) / 1000;
  fprintf(fid, '%s %.17g %.17g %.17g %.17g %s\n', name, double(sad), double(mse), ...
          double(grad), double(conn), class(grad));
end
fclose(fid);
"""


def _git_show(git_dir: Path, path: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _value(text: str):
    number = float(text)
    return None if math.isnan(number) else number  # JSON has no NaN: null means MATLAB's NaN


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gca-git-dir", required=True, type=Path,
                        help="git dir of a Yaoyi-Li/GCA-Matting clone (holds DIM_evaluation_code)")
    parser.add_argument("--octave", default="octave", help="Octave executable (default: octave)")
    args = parser.parse_args(argv)

    FIXTURES.mkdir(parents=True, exist_ok=True)
    cases = make_cases()
    for name, (pred, truth, trimap) in cases.items():
        for suffix, image in (("pred", pred), ("truth", truth), ("trimap", trimap)):
            assert image.dtype == np.uint8 and image.shape == (HEIGHT, WIDTH), (name, suffix)
            cv2.imwrite(str(FIXTURES / f"{name}_{suffix}.png"), image)

    commit = subprocess.run(["git", f"--git-dir={args.gca_git_dir}", "rev-parse", "HEAD"],
                            check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        dim_dir = work / "DIM_evaluation_code"
        dim_dir.mkdir()
        for file in DIM_FILES:
            (dim_dir / file).write_text(_git_show(args.gca_git_dir,
                                                  f"DIM_evaluation_code/{file}"))
        out_file = work / "values.txt"
        names = "{" + ", ".join(f"'{name}'" for name in cases) + "}"
        script = (f"dim_dir = '{dim_dir}'; fixture_dir = '{FIXTURES}'; out_file = '{out_file}';\n"
                  f"names = {names};\n" + OCTAVE_DRIVER)
        (work / "driver.m").write_text(script)
        subprocess.run([args.octave, "--no-gui", "--quiet", "--no-window-system",
                        str(work / "driver.m")], check=True, cwd=work)
        lines = out_file.read_text().splitlines()
        version = subprocess.run(
            [args.octave, "--no-gui", "--quiet", "--eval",
             "pkg load image; v = pkg('list', 'image'); printf('%s %s', version(), v{1}.version)"],
            check=True, capture_output=True, text=True).stdout.split()

    values = {}
    for line in lines:
        name, sad, mse, grad, conn, precision = line.split()
        values[name] = {"sad": _value(sad), "mse": _value(mse), "grad": _value(grad),
                        "conn": _value(conn), "octave_class": precision}
    record = {
        "about": "Values of the Adobe DIM MATLAB evaluation code run by GNU Octave on the "
                 "<case>_{pred,truth,trimap}.png files beside this one; sad as "
                 "compute_sad_loss returns it (/1000), grad and conn divided by 1000 as "
                 "evaluate.m does, mse unscaled; null = NaN (empty unknown region).",
        "made_by": "tools/octave_fixtures/make_fixtures.py",
        "reference": {"repository": "Yaoyi-Li/GCA-Matting", "commit": commit,
                      "files": [f"DIM_evaluation_code/{file}" for file in DIM_FILES]},
        "octave": version[0], "octave_image_package": version[1],
        "cases": values,
    }
    (FIXTURES / "dim_octave.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(values, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
