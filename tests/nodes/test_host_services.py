"""One place for the host's services (nodes/_host.py) and one output-folder rule for every node
that writes: override -> host output folder -> LDP_OUTPUT_DIR -> a clear error."""
from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
import torch

from comfyui_ld_portrait.nodes import _host
from comfyui_ld_portrait.nodes.dataset import LDPSaveDataset
from comfyui_ld_portrait.nodes.matting import LDPSaveRGBASequence
from helpers.layers import HOST_MODULES

NODES = Path(__file__).resolve().parents[2] / "nodes"


@pytest.fixture
def no_host(monkeypatch, tmp_path):
    """Plain Python: no ComfyUI module, no LDP_OUTPUT_DIR, run from an empty folder."""
    for name in ("folder_paths", "comfy", "comfy.utils", "comfy.model_management", "comfy.cli_args"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv("LDP_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


def _fake_folder_paths(monkeypatch, output: Path, input_dir: Path | None = None):
    host = types.ModuleType("folder_paths")
    host.get_output_directory = lambda: str(output)
    host.get_input_directory = lambda: str(input_dir or output)
    monkeypatch.setitem(sys.modules, "folder_paths", host)
    return host


def test_the_output_folder_rule_override_then_host_then_env_then_an_error(no_host, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not running inside ComfyUI.*LDP_OUTPUT_DIR.*output_root="):
        _host.output_directory()
    with pytest.raises(ValueError, match="LDP_OUTPUT_DIR"):
        _host.output_directory("  ")  # a blank override is no override
    monkeypatch.setenv("LDP_OUTPUT_DIR", str(tmp_path / "env"))
    assert _host.output_directory() == tmp_path / "env"
    _fake_folder_paths(monkeypatch, tmp_path / "host")
    assert _host.output_directory() == tmp_path / "host"  # the host wins over the variable
    assert _host.output_directory(tmp_path / "override") == tmp_path / "override"
    assert _host.output_directory(str(tmp_path / "override")) == tmp_path / "override"


def test_every_writing_node_follows_the_one_rule(no_host, tmp_path, monkeypatch):
    rgba = torch.rand(1, 8, 8, 4)
    fg, alpha = torch.rand(1, 8, 8, 3), torch.ones(1, 8, 8)
    for write in (lambda: LDPSaveRGBASequence().save(rgba, "clip"),
                  lambda: LDPSaveDataset().save(fg, alpha, dataset_name="ds")):
        with pytest.raises(ValueError, match="LDP_OUTPUT_DIR"):
            write()
    assert list(tmp_path.iterdir()) == []  # nothing written into the working folder
    LDPSaveRGBASequence().save(rgba, "clip", output_root=tmp_path / "explicit")
    assert (tmp_path / "explicit/clip/frame_00000.png").is_file()
    monkeypatch.setenv("LDP_OUTPUT_DIR", str(tmp_path / "env"))
    LDPSaveRGBASequence().save(rgba, "clip")
    LDPSaveDataset().save(fg, alpha, dataset_name="ds")
    assert (tmp_path / "env/clip/frame_00000.png").is_file()
    assert (tmp_path / "env/ds/meta/000000.json").is_file()
    _fake_folder_paths(monkeypatch, tmp_path / "host")
    result = LDPSaveRGBASequence().save(rgba, "clip")
    LDPSaveDataset().save(fg, alpha, dataset_name="ds")
    assert result["result"] == (str(tmp_path / "host" / "clip"),)
    assert (tmp_path / "host/ds/meta/000000.json").is_file()


def test_input_folder_progress_and_interrupt_without_and_with_the_host(no_host, tmp_path, monkeypatch):
    assert _host.input_directory() is None and _host.folder_paths() is None
    assert _host.model_management() is None and _host.disables_metadata() is False
    progress = _host.Progress(3)
    progress.update()
    _host.check_interrupt()  # no host: nothing to ask
    assert progress.done == 1

    _fake_folder_paths(monkeypatch, tmp_path / "out", tmp_path / "in")
    calls = []
    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    management = types.ModuleType("comfy.model_management")

    class ProgressBar:
        def __init__(self, total):
            calls.append(("total", total))

        def update(self, steps):
            calls.append(("update", steps))

    def interrupted():
        raise InterruptedError("cancel pressed")

    utils.ProgressBar = ProgressBar
    management.throw_exception_if_processing_interrupted = interrupted
    comfy.utils, comfy.model_management = utils, management
    for name, module in (("comfy", comfy), ("comfy.utils", utils), ("comfy.model_management", management)):
        monkeypatch.setitem(sys.modules, name, module)
    assert _host.input_directory() == tmp_path / "in"
    assert _host.model_management() is management
    _host.Progress(2).update(2)
    assert calls == [("total", 2), ("update", 2)]
    with pytest.raises(InterruptedError):
        _host.check_interrupt()


def test_no_node_module_but_host_looks_the_host_up():
    """Every look-up of ComfyUI goes through nodes/_host.py: no other node module imports a host
    module or guards an import with ``except ImportError``."""
    found = []
    for path in sorted(NODES.glob("*.py")):
        if path.name == "_host.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                names = []
            found += [f"{path.name}:{node.lineno}: import {name}" for name in names
                      if name.split(".")[0] in HOST_MODULES]
            if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) \
                    and node.type.id in ("ImportError", "ModuleNotFoundError"):
                found.append(f"{path.name}:{node.lineno}: except {node.type.id}")
    assert found == [], "host look-ups outside nodes/_host.py:\n" + "\n".join(found)
