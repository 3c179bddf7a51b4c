"""Run the published Python evaluation code of P3M and GCA-Matting on our test cases.

1. ``--p3m-git-dir``: JizhiziLi/P3M ``core/evaluate.py`` (the P3M-500 / AM-2K whole-image
   protocol) on the fixture PNGs -> ``tests/evaluation/fixtures/p3m_whole.json``, the reference
   for our ``whole`` protocol.
2. ``--gca-git-dir``: Yaoyi-Li/GCA-Matting ``utils/evaluate.py`` (a common Python port of the DIM
   MATLAB code) on the fixture PNGs and on synthetic portraits (truth against the damaged
   alpha, trimap band 8 px) -> ``tools/octave_fixtures/port_differences.json`` and a table:
   how far the port is from the MATLAB definition (our ``dim``, proved against Octave).

Both files are read from the git dirs (never copied into this repository) and executed with
scikit-image on ``--skimage-path`` (``pip install --target DIR scikit-image lazy_loader``);
NumPy aliases they use that NumPy 2 removed (``np.float``, ``np.int``) are restored first.
Nothing here is needed by the tests or at run time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "evaluation" / "fixtures"


def _load_module(git_dir: Path, path: str, name: str):
    source = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True,
                            capture_output=True, text=True).stdout
    np.float, np.int = float, int  # removed in NumPy 1.24; the reference code still uses them
    module = types.ModuleType(name)
    exec(compile(source, f"{git_dir}:{path}", "exec"), module.__dict__)
    return module


def _commit(git_dir: Path) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _fixture_cases():
    record = json.loads((FIXTURES / "dim_octave.json").read_text())
    for name in sorted(record["cases"]):
        read = [cv2.imread(str(FIXTURES / f"{name}_{suffix}.png"), cv2.IMREAD_UNCHANGED)
                for suffix in ("pred", "truth", "trimap")]
        yield name, read[0], read[1], read[2], record["cases"][name]


def p3m_fixtures(git_dir: Path) -> dict:
    p3m = _load_module(git_dir, "core/evaluate.py", "p3m_evaluate")
    cases = {}
    for name, pred, truth, _trimap, _octave in _fixture_cases():
        # P3M's test.py: alpha = np.array(Image.open(path)) / 255. ; predictions are 0..1 floats.
        pd, gt = pred / 255.0, truth / 255.0
        sad, mse, mad = p3m.calculate_sad_mse_mad_whole_img(pd, gt)
        cases[name] = {"sad": float(sad), "mse": float(mse), "mad": float(mad),
                       "grad": float(p3m.compute_gradient_whole_image(pd, gt)),
                       "conn": float(p3m.compute_connectivity_loss_whole_image(pd, gt))}
    record = {"about": "JizhiziLi/P3M core/evaluate.py whole-image functions "
                       "(calculate_sad_mse_mad_whole_img, compute_gradient_whole_image, "
                       "compute_connectivity_loss_whole_image) on the <case>_pred/_truth.png "
                       "files beside this one, each divided by 255 in float64 as P3M's test.py "
                       "does.",
              "made_by": "tools/octave_fixtures/reference_ports.py",
              "reference": {"repository": "JizhiziLi/P3M", "commit": _commit(git_dir)},
              "cases": cases}
    (FIXTURES / "p3m_whole.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _portrait_pairs(count: int, size: int):
    sys.path.insert(0, str(REPO.parent))
    from comfyui_ld_portrait.pipeline.synthetic import make_portrait
    from comfyui_ld_portrait.base.trimap import trimap_from_alpha

    for seed in range(count):
        portrait = make_portrait(seed, size)
        truth = np.round(portrait.alpha_true * 255).astype(np.uint8)
        pred = np.round(portrait.alpha_artifacts * 255).astype(np.uint8)
        yield f"portrait_{seed}", pred, truth, trimap_from_alpha(truth, 8)


def gca_differences(git_dir: Path, count: int, size: int) -> dict:
    from comfyui_ld_portrait.evaluation import evaluate_pair

    gca = _load_module(git_dir, "utils/evaluate.py", "gca_evaluate")
    pairs = [(name, pred, truth, trimap) for name, pred, truth, trimap, _ in _fixture_cases()]
    pairs += list(_portrait_pairs(count, size))
    rows = {}
    for name, pred, truth, trimap in pairs:
        ours = evaluate_pair(pred, truth, trimap, protocol="dim")
        p, t = pred.astype(np.float64), truth.astype(np.float64)  # GCA's tester passes 0..255
        port = {"sad": float(gca.comput_sad_loss(p, t, trimap)[0]),
                "mse": float(gca.compute_mse_loss(p, t, trimap)),
                "grad": float(gca.compute_gradient_loss(p, t, trimap)),
                "conn": float(gca.compute_connectivity_error(p, t, trimap, 0.1))}
        rows[name] = {key: {"dim": getattr(ours, key), "gca_port": port[key]} for key in port}
    return {"reference": {"repository": "Yaoyi-Li/GCA-Matting", "path": "utils/evaluate.py",
                          "commit": _commit(git_dir)},
            "about": "dim = our DIM measures (agree with Octave running the MATLAB code to "
                     "1e-5); gca_port = GCA-Matting's Python port on the same inputs.",
            "pairs": rows}


def _print_table(differences: dict) -> None:
    print(f"{'pair':22} {'measure':6} {'DIM (MATLAB)':>14} {'GCA port':>14} {'port/DIM - 1':>13}")
    for name, measures in differences["pairs"].items():
        for key, values in measures.items():
            dim, port = values["dim"], values["gca_port"]
            if dim != dim:  # NaN
                ratio = "n/a"
            elif dim == 0:
                ratio = "0" if port == 0 else "inf"
            else:
                ratio = f"{port / dim - 1:+.2%}"
            print(f"{name:22} {key:6} {dim:14.6g} {port:14.6g} {ratio:>13}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--p3m-git-dir", type=Path)
    parser.add_argument("--gca-git-dir", type=Path)
    parser.add_argument("--skimage-path", type=Path,
                        help="folder with scikit-image installed (pip install --target)")
    parser.add_argument("--portraits", type=int, default=4, help="synthetic pairs (default 4)")
    parser.add_argument("--size", type=int, default=512, help="their side (default 512)")
    args = parser.parse_args(argv)
    if args.skimage_path:
        sys.path.insert(0, str(args.skimage_path))
    if args.p3m_git_dir:
        print(json.dumps(p3m_fixtures(args.p3m_git_dir)["cases"], indent=1))
    if args.gca_git_dir:
        differences = gca_differences(args.gca_git_dir, args.portraits, args.size)
        (Path(__file__).parent / "port_differences.json").write_text(
            json.dumps(differences, indent=1) + "\n")
        _print_table(differences)
    return 0


if __name__ == "__main__":
    sys.exit(main())
