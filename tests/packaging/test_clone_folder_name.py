"""The README's test command must work from a clone under the folder name ComfyUI users give
custom nodes: "ComfyUI-LD-Portrait" is no Python identifier, and the checkout's own
``__init__.py`` (ComfyUI's entry point) once made pytest import the folder as a package."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("folder_name", ["ComfyUI-LD-Portrait", "ldp"])
def test_pytest_runs_in_a_checkout_named_like_a_custom_node(tmp_path, folder_name):
    checkout = tmp_path / folder_name
    # The project's sources and pytest configuration (ComfyUI's entry point __init__.py
    # included), with a probe test in place of the suite.
    shutil.copytree(REPO_ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "tests", "out", "docs", "workflows", "benchmarks", "*.egg-info", "__pycache__"))
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_probe.py").write_text("def test_probe():\n    assert 1 + 1 == 2\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=checkout, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


def test_ci_runs_the_readme_test_command_from_a_folder_named_like_the_pack():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text().rstrip().splitlines()
    assert ci[-1] in readme, "the last line of .ci/run must be README's test command, verbatim"
    assert "-c constraints.txt" in ci[-1], "CI must install the tested versions"
    assert (REPO_ROOT / "constraints.txt").is_file()
    assert 'ComfyUI-LD-Portrait' in "\n".join(ci)
