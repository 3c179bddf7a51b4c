"""The ``ld-portrait`` command: the parser skeleton, sub-command discovery and :func:`main`.

Each sub-command lives in its own module of this package (``refine.py``, ``demo.py``,
``dataset.py``, ``queue/``, ``models.py``, ...). A module ``cli/<name>.py`` (or package) that
defines ``register(commands)`` adds its sub-command(s): it calls ``commands.add_parser(...)``
and sets ``handler=`` (a function ``(args, stdout, stderr) -> exit code``) with
``set_defaults``; :func:`main` dispatches on ``args.handler``. A module that defines
``register_dataset_action(actions)`` adds an action under ``ld-portrait dataset``. No shared
list to edit: dropping the module in is enough.

Exit codes (:mod:`.common`): 0 the run completed (files that could not be used are listed);
1 an unrecoverable error (no input, output not writable, disk full); 2 bad arguments; 130
interrupted with Ctrl-C (everything written so far is complete: run the same command to
continue).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import sys

__all__ = ["main", "build_parser", "command_modules", "ProgressBar", "StopFlag"]

from .common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ProgressBar, StopFlag, keep_freed_memory  # noqa: F401

#: Modules of this package that are not sub-commands.
_NOT_COMMANDS = {"app", "common", "__main__"}

#: Sub-commands that decode no image in this process (the queue only talks to servers): they
#: start without loading the image decoder (OpenCV, numpy) to quiet its messages. So does a
#: command line that names no sub-command (``--help``, ``--version``).
_DECODES_NO_IMAGES = {"queue", None}


def command_modules(only: str | None = None):
    """The sub-command modules of this package, sorted by name: every module ``cli/<name>.py``
    (or package) except :data:`_NOT_COMMANDS` and names starting with ``_``; with ``only``,
    just the module named like that command (``video-matte``: ``video_matte``), if any."""
    from . import __path__ as package_path

    for info in sorted(pkgutil.iter_modules(package_path), key=lambda info: info.name):
        if info.name not in _NOT_COMMANDS and not info.name.startswith("_") and \
                (only is None or info.name == only.replace("-", "_")):
            yield importlib.import_module(f"{__package__}.{info.name}")


def _command_named(argv) -> str | None:
    """The sub-command ``argv`` names (its first argument not starting with ``-``), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ld-portrait`` parser with every sub-command; with ``command``, only that one when
    its module registers it (the others' modules may import numpy, OpenCV or torch at the
    top, so ``ld-portrait queue`` starts without loading them), else every one."""
    from ..dataset.version import tool_version

    parser = argparse.ArgumentParser(
        prog="ld-portrait",
        description="Portrait mattes with Layer Diffusion and connectivity priors: refine "
                    "RGBA portraits into a matting dataset.",
        epilog="Exit codes: 0 done (files that could not be used are listed), 1 unrecoverable "
               "error, 2 bad arguments, 130 interrupted (run the same command to resume).")
    parser.add_argument("--version", action="version", version=f"ld-portrait {tool_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # ``dataset`` gathers actions from every module (register_dataset_action).
    if command is not None and command != "dataset":
        for module in command_modules(only=command):
            register = getattr(module, "register", None)
            if register is not None:
                register(commands)
        if command in commands.choices:
            return parser
        return build_parser()  # not a module of its own: build the whole parser
    for module in command_modules():
        register = getattr(module, "register", None)
        if register is not None:
            register(commands)
    return parser


def _start_workers_early(args) -> None:
    """A command that will run worker processes (``--workers``, default the cores) starts their
    fork server before its own imports, so the two overlap."""
    if not hasattr(args, "workers"):
        return
    from ..dataset.workers import available_cores, start_worker_server

    if (args.workers if args.workers is not None else available_cores()) > 1:
        start_worker_server()


def main(argv=None, *, stdout=None, stderr=None) -> int:
    """Entry point of the ``ld-portrait`` console script; returns the exit code.

    ``argv`` defaults to ``sys.argv[1:]``; ``stdout``/``stderr`` default to the process streams
    (tests pass their own).
    """

    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    keep_freed_memory()  # batches of large images reuse memory instead of faulting it in again
    command = _command_named(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command)
    decodes = command not in _DECODES_NO_IMAGES
    if decodes:
        from ..dataset.imagefiles import quiet_decoder_messages

        # A broken input is reported by our message naming the file, not by libpng's own line.
        quiet_before = quiet_decoder_messages(True)
    try:
        # argparse prints usage errors, --help and --version itself: to the caller's streams.
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(stdout)
            return EXIT_USAGE
        _start_workers_early(args)
        return handler(args, stdout, stderr)
    except SystemExit as exit_:  # argparse errors and --help/--version
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        stderr.write("\nld-portrait: interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        if decodes:
            quiet_decoder_messages(quiet_before)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
