"""Prompt templates and the shipped LD-Portrait vocabulary (pure Python, no host import).

- :mod:`.template` -- the template language, ``Template.parse`` / ``render``, errors
- ``presets/*.txt`` -- shipped templates (``list_presets``, ``load_preset``)
- ``presets/wildcards/*.txt`` -- shipped wildcard lists (``SHIPPED_WILDCARD_DIR``)

Example::

    from comfyui_ld_portrait.prompting import load_preset
    template = load_preset("ld_portrait")
    sample = template.render(17, seed=0, mode="enumerate")
    sample.prompt, sample.negative, sample.attributes, sample.seed
"""
from __future__ import annotations

from pathlib import Path

from .template import (
    MODES,
    RenderedPrompt,
    Template,
    TemplateError,
    clean_prompt,
    count_combinations,
    sample_seed,
    spread_stride,
)

PRESET_DIR = Path(__file__).resolve().parent / "presets"
SHIPPED_WILDCARD_DIR = PRESET_DIR / "wildcards"
DEFAULT_PRESET = "ld_portrait"

__all__ = [
    "MODES", "RenderedPrompt", "Template", "TemplateError", "clean_prompt", "count_combinations",
    "sample_seed", "spread_stride", "PRESET_DIR", "SHIPPED_WILDCARD_DIR", "DEFAULT_PRESET",
    "list_presets", "preset_path", "preset_text", "load_preset",
]


def list_presets() -> list[str]:
    """Names of the shipped presets (``presets/<name>.txt``), sorted."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.txt"))


def preset_path(name: str) -> Path:
    """File of a shipped preset; ``ValueError`` naming the available ones if unknown."""
    available = list_presets()
    if name not in available:
        raise ValueError(f"unknown prompt preset {name!r}; available: {', '.join(available)}")
    return PRESET_DIR / f"{name}.txt"


def preset_text(name: str) -> str:
    """Template text of a shipped preset (a starting point for a custom template)."""
    return preset_path(name).read_text(encoding="utf-8")


def load_preset(name: str, *, wildcard_dirs=()) -> Template:
    """Parse a shipped preset.

    Parameters
    ----------
    name : str
        One of :func:`list_presets`.
    wildcard_dirs : iterable of str or Path
        User wildcard folders searched before the shipped ones, so a user file
        ``hair_color.txt`` replaces the shipped list of that name.
    """
    return Template.from_file(preset_path(name),
                              wildcard_dirs=(*wildcard_dirs, SHIPPED_WILDCARD_DIR), name=f"{name}.txt")
