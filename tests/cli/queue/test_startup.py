"""Fast start-up (issue 20): importing the ``ld-portrait`` entry point and the queue command
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


def test_the_probe_sees_heavy_imports():
    # The check itself works: importing the dataset writer does load numpy.
    assert "numpy" in loaded_after("import comfyui_ld_portrait.dataset.writer")
