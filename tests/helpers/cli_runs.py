"""Running ``ld-portrait`` in-process and preparing its input folders, for the CLI tests."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

from comfyui_ld_portrait.cli.app import main

#: A real Layer Diffusion RGBA output in the ``layerdiffuse_dir`` fixture's folder.
PORTRAIT = "causal_cut.png"


def run_cli(argv) -> tuple[int, str, str]:
    """``ld-portrait ARGV`` (items made ``str``) in this process: ``(exit code, stdout,
    stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    code = main([str(arg) for arg in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def portrait_folder(folder: Path, layerdiffuse_dir: Path, *names: str) -> Path:
    """``folder`` (created) holding a copy of :data:`PORTRAIT` under each of ``names``
    (default ``portrait.png``)."""
    folder.mkdir(parents=True)
    for name in names or ("portrait.png",):
        shutil.copyfile(layerdiffuse_dir / PORTRAIT, folder / name)
    return folder
