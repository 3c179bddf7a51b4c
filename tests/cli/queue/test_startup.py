"""Fast start-up: importing the ``ld-portrait`` entry point and the queue command
loads none of the heavy libraries (checked in a fresh interpreter's ``sys.modules``)."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "numpy", "cv2", "scipy")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               timeout=120, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_queue_command_starts_without_heavy_imports():
    assert loaded_after("from comfyui_ld_portrait.cli import main\n"
                        "import comfyui_ld_portrait.cli.queue.command\n"
                        "import comfyui_ld_portrait.cli.queue.runner") == []


def test_ld_portrait_queue_parses_its_arguments_without_heavy_imports():
    # ``ld-portrait queue ...`` builds its parser from the queue's module alone.
    assert loaded_after("import io\nfrom comfyui_ld_portrait.cli import main\n"
                        "assert main(['queue', '--help'], stdout=io.StringIO()) == 0") == []


def test_ld_portrait_help_lists_every_command_without_heavy_imports():
    # The settings the parsers read (refinement, gate, keying, video matting, evaluation
    # protocols, image limits) live in standard-library modules; the packages load their
    # numeric modules on first use.
    assert loaded_after("import io\nfrom comfyui_ld_portrait.cli import main\nout = io.StringIO()\n"
                        "assert main(['--help'], stdout=out) == 0\n"
                        "for name in ('refine', 'demo', 'key', 'evaluate', 'video-matte', "
                        "'dataset', 'queue', 'models'):\n"
                        "    assert name in out.getvalue(), name") == []


def test_the_settings_modules_import_without_heavy_imports():
    assert loaded_after("import comfyui_ld_portrait.refine.refine_params\n"
                        "import comfyui_ld_portrait.refine.quality_params\n"
                        "import comfyui_ld_portrait.matting.params\n"
                        "import comfyui_ld_portrait.evaluation.names\n"
                        "import comfyui_ld_portrait.dataset.imagelimits\n"
                        "from comfyui_ld_portrait.refine import RefineParams\n"
                        "RefineParams(reach=9).validate()") == []


def test_the_lazy_packages_still_offer_every_public_name():
    # __all__ of the lazy packages resolves (numpy loads then), and an unknown name is an
    # AttributeError, as from an ordinary module.
    import importlib

    import pytest

    for package in ("refine", "evaluation"):
        module = importlib.import_module(f"comfyui_ld_portrait.{package}")
        for name in module.__all__:
            assert getattr(module, name) is not None, (package, name)
        assert set(module.__all__) <= set(dir(module))
        with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
            getattr(module, "nonexistent")


def test_the_probe_sees_heavy_imports():
    # The check itself works: importing the dataset writer does load numpy.
    assert "numpy" in loaded_after("import comfyui_ld_portrait.dataset.writer")
