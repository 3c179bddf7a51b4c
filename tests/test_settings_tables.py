"""The settings tables in the docs are generated from the settings classes' fields
(``tools/settings_tables.py``) and must be current."""
from __future__ import annotations

import dataclasses
import runpy
import subprocess
import sys
from pathlib import Path

from comfyui_ld_portrait.base.fields import Settings, bounded_field, settings_table

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "settings_tables.py"


def test_the_docs_settings_tables_are_current():
    completed = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    documented = (REPO / "docs" / "refinement.md").read_text(encoding="utf-8")
    assert "<!-- settings: refine.refine_params.RefineParams -->\n| field |" in documented


def test_a_table_shows_kind_default_range_and_meaning_and_a_stale_block_is_rewritten():
    @dataclasses.dataclass(frozen=True)
    class Demo(Settings):
        size: "int | None" = bounded_field(None, 1, 9, "Pixels | automatic when unset.")
        level: float = bounded_field(2.0 / 255.0, 0.0, 1.0, "A  level\n  on two lines.")
        on: bool = bounded_field(True, False, True, "A switch.")
        free: str = "not a bounded field"

    assert settings_table(Demo).splitlines() == [
        "| field | kind | default | range | meaning |",
        "|---|---|---|---|---|",
        "| `size` | whole number or unset | automatic | 1 .. 9 | Pixels \\| automatic when unset. |",
        "| `level` | number | 0.00784314 | 0 .. 1 | A level on two lines. |",
        "| `on` | switch | True | True / False | A switch. |",
    ]
    render = runpy.run_path(str(TOOL))["render"]
    stale = ("text\n<!-- settings: matting.params.VideoMatteParams -->\nold table\n"
             "<!-- /settings -->\nafter\n")
    fresh = render(stale)
    assert "old table" not in fresh and "| `smoothing` | number | 0.8 | 0 .. 0.95 |" in fresh
    assert fresh.startswith("text\n") and fresh.endswith("<!-- /settings -->\nafter\n")
