"""The pack's version, from the installed distribution's metadata (no heavy imports)."""
from __future__ import annotations

__all__ = ["tool_version"]


def tool_version() -> str:
    """Installed version of ``comfyui-ld-portrait`` (``0+unknown`` when run from a bare checkout)."""
    try:
        from importlib.metadata import version

        return version("comfyui-ld-portrait")
    except Exception:  # not installed (PackageNotFoundError) or broken metadata
        return "0+unknown"
