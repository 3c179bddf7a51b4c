"""The host's services, in one place: every node looks ComfyUI up through this module.

The pack imports without the host and its nodes run in plain Python (tests, scripts), so each
service is looked up when a node runs, never at import, and has one defined answer without the
host:

==========================  =================================  ================================
service                     inside ComfyUI                     without the host
==========================  =================================  ================================
:func:`output_directory`    the host's output folder           ``LDP_OUTPUT_DIR``, else an error
:func:`input_directory`     the host's input folder            None
:func:`folder_paths`        ``folder_paths``                   None
:func:`model_management`    ``comfy.model_management``         None
:class:`Progress`           ``comfy.utils.ProgressBar``        a silent counter
:func:`check_interrupt`     raises when the user pressed       nothing
                            Cancel
:func:`disables_metadata`   ``--disable-metadata``             False
==========================  =================================  ================================

The one output-folder rule (:func:`output_directory`), for every node that writes files: an
explicit override (a keyword of the node's function, not a socket: for tests and scripts), then
the host's output folder, then the environment variable ``LDP_OUTPUT_DIR``; without any of them
the node refuses to run rather than guess (it never writes into the working directory).
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

__all__ = ["OUTPUT_DIR_ENV", "host_module", "folder_paths", "model_management", "output_directory",
           "input_directory", "Progress", "check_interrupt", "disables_metadata"]

#: Where nodes write when running without the host (and without an override).
OUTPUT_DIR_ENV = "LDP_OUTPUT_DIR"


def host_module(name: str):
    """The host's module ``name`` (e.g. ``"folder_paths"``, ``"comfy.utils"``), or None when the
    pack runs without ComfyUI. The one guarded import of the host."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def folder_paths():
    """ComfyUI's ``folder_paths`` (model, input, output and user folders), or None."""
    return host_module("folder_paths")


def model_management():
    """ComfyUI's ``comfy.model_management`` (devices, dtypes, memory), or None."""
    return host_module("comfy.model_management")


def output_directory(override=None) -> Path:
    """The folder a node writes into: ``override`` when given (not blank), else the host's
    output folder, else ``LDP_OUTPUT_DIR``.

    Raises
    ------
    ValueError
        None of the three gives a folder.
    """
    if override is not None and str(override).strip():
        return Path(override).expanduser()
    host = folder_paths()
    if host is not None:
        return Path(host.get_output_directory())
    env = os.environ.get(OUTPUT_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    raise ValueError(
        "no output folder: this is not running inside ComfyUI. Set the environment variable "
        f"{OUTPUT_DIR_ENV} to the folder the node should write into, or pass output_root=.")


def input_directory() -> Path | None:
    """ComfyUI's input folder, or None without the host."""
    host = folder_paths()
    return None if host is None else Path(host.get_input_directory())


class Progress:
    """``comfy.utils.ProgressBar`` when the host is present, otherwise a silent counter."""

    def __init__(self, total: int):
        self.total = int(total)
        self.done = 0
        utils = host_module("comfy.utils")
        self._bar = None if utils is None else utils.ProgressBar(self.total)

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(steps)


def check_interrupt() -> None:
    """Raise the host's interrupt exception if the user pressed Cancel; no-op without host."""
    management = model_management()
    if management is not None:
        management.throw_exception_if_processing_interrupted()


def disables_metadata() -> bool:
    """True when the running ComfyUI was started with ``--disable-metadata``.

    Looked up only inside a running host, where ``comfy.cli_args`` has long been imported;
    outside one nothing is imported (importing it elsewhere would parse this process's
    command line as ComfyUI's).
    """
    if "comfy.cli_args" not in sys.modules:
        return False
    return bool(getattr(sys.modules["comfy.cli_args"].args, "disable_metadata", False))
