"""The pack's import rules, checked by walking every module's imports with ``ast``.

Layers, lowest first (a package may import from its own layer and the ones below):

0. ``base``: what every package shares (input checks, trimaps, padding, compositing, error
   maps, the settings base, lazy namespaces); it imports no other package of the pack
1. ``refine``, ``prompting``, ``layerdiffusion``, ``evaluation``, ``matting``: algorithms
2. ``dataset``, ``training``: the dataset on disk and what reads it
3. ``pipeline``: jobs composed from the libraries
4. ``cli``, ``nodes``: the two front ends (neither imports the other)

Besides: only ``nodes`` imports the host (ComfyUI's modules); the numpy algorithm packages
import no torch; inside the pack every import of the pack is relative; the root
``__init__.py`` imports only ``nodes``; no module of the pack imports the modules that live
beside it and are not installed: ``fixtures`` (the benchmarks' and tests' data, under
``benchmarks/``), ``benchtools``, the tests' ``helpers``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

LAYERS = {
    "base": 0,
    "refine": 1, "prompting": 1, "layerdiffusion": 1, "evaluation": 1, "matting": 1,
    "dataset": 2, "training": 2,
    "pipeline": 3,
    "cli": 4, "nodes": 4,
}
#: Front ends that must not reach into each other.
SEPARATE = {("cli", "nodes"), ("nodes", "cli")}
#: Top-level modules of ComfyUI a custom node pack may meet.
HOST_MODULES = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "execution",
                "node_helpers", "latent_preview", "nodes", "model_management"}
#: Packages whose code is numpy/OpenCV/SciPy only.
NO_TORCH = {"base", "refine", "prompting", "evaluation", "matting"}
PACK_NAME = "comfyui_ld_portrait"
NOT_PACK = {"tests", "tools", "benchmarks", "examples", "docs", "workflows", ".venv", "build"}
#: Top-level modules found only beside the pack (pytest's ``pythonpath`` and the benchmark
#: scripts put them on ``sys.path``); ``pip install`` leaves them out, so the pack never imports them.
NOT_SHIPPED = {"fixtures", "benchtools", "helpers", "tests", "benchmarks"}


@dataclass(frozen=True)
class Crossing:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def pack_modules(root: Path):
    """(relative path, top package or '' for the root __init__) of every module of the pack."""
    root = Path(root)
    yield "__init__.py", ""
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if len(relative.parts) < 2 or relative.parts[0] in NOT_PACK or relative.parts[0].startswith("."):
            continue
        yield str(relative), relative.parts[0]


def _targets(tree: ast.AST, relative: str):
    """(line, absolute-ish target) for each import; relative ones resolved inside the pack."""
    package_parts = Path(relative).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, False
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or "", False
                continue
            up = node.level - 1
            if up > len(package_parts):
                yield node.lineno, "<beyond the pack>", True
                continue
            base = list(package_parts[:len(package_parts) - up])
            module = base + (node.module.split(".") if node.module else [])
            if not module:  # `from . import x` at the root, or `from .. import x` to the root
                for alias in node.names:
                    yield node.lineno, alias.name, True
            else:
                yield node.lineno, ".".join(module), True


def crossings(root) -> list[Crossing]:
    """Every import in the pack under ``root`` that breaks a rule above."""
    root = Path(root)
    found = []
    for relative, package in pack_modules(root):
        path = root / relative
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target, inside in _targets(tree, relative):
            top = target.split(".")[0]

            def cross(message):
                found.append(Crossing(relative, line, message))

            if not inside:
                if top == PACK_NAME:
                    cross(f"absolute import of {target}: imports inside the pack are relative")
                elif top in NOT_SHIPPED:
                    cross(f"imports {target}, which is not shipped (benchmarks/ or tests/)")
                elif top in HOST_MODULES and package != "nodes":
                    cross(f"imports the host ({target}); only nodes/ may")
                elif top == "torch" and package in NO_TORCH:
                    cross(f"imports torch; {package}/ is numpy-only")
                continue
            if target == "<beyond the pack>":
                cross("relative import climbs above the pack")
                continue
            if package == "":
                if top != "nodes":
                    cross(f"the root __init__ imports {target}; it may import only nodes")
                continue
            if top not in LAYERS or package not in LAYERS:
                if top != package:
                    cross(f"{package}/ imports {target}, a package the layer table does not know")
                continue
            if (package, top) in SEPARATE:
                cross(f"{package}/ imports {target}: the front ends stay apart")
            elif LAYERS[top] > LAYERS[package]:
                cross(f"{package}/ (layer {LAYERS[package]}) imports {target} (layer {LAYERS[top]}), "
                      "a higher layer")
    return found
