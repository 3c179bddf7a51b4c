"""keep_freed_memory: the ld-portrait process keeps freed arrays for the next image."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from comfyui_ld_portrait.cli import app as cli

# Allocates a 64 MB array, frees it, and prints how many bytes the process kept free for
# reuse (glibc's mallinfo2); by default glibc unmaps an array that large when it is freed,
# so the next image's arrays are faulted in and zeroed again.
_PROBE = """
import ctypes, sys
import numpy as np
from comfyui_ld_portrait.cli.common import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_freed_memory()
array = np.ones(64 * 2**20, np.uint8)
del array
print(mallinfo2().fordblks)
"""


def _kept_free_bytes(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")
def test_freed_arrays_stay_with_the_process_for_the_next_image():
    assert _kept_free_bytes("keep") >= 64 * 2**20
    assert _kept_free_bytes("default") < 64 * 2**20  # without it glibc gives the array back


def test_the_command_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["--version"]) == 0
    assert calls == [True]
