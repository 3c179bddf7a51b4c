"""Write (or check) the settings tables in the docs from the settings classes' fields.

A doc holds a block between ``<!-- settings: module.Class -->`` and ``<!-- /settings -->``;
this script replaces its body with :func:`comfyui_ld_portrait.base.fields.settings_table` of
that class. ``tests/test_settings_tables.py`` runs it with ``--check``, so a field whose
default, range or meaning changes fails the suite until the docs are rewritten.

Usage::

    .venv/bin/python tools/settings_tables.py           # rewrite the blocks in docs/
    .venv/bin/python tools/settings_tables.py --check   # exit 1 naming each stale block
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from comfyui_ld_portrait.base.fields import settings_table

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- settings: (?P<name>[\w.]+) -->\n)(?P<body>.*?)(<!-- /settings -->)", re.S)


def render(text: str) -> str:
    """``text`` with every settings block's body replaced by the table of its class."""
    def table(match: re.Match) -> str:
        module, _, name = match["name"].rpartition(".")
        record_class = getattr(importlib.import_module(f"comfyui_ld_portrait.{module}"), name)
        return match.group(1) + settings_table(record_class) + match.group(4)

    return BLOCK.sub(table, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        if not BLOCK.search(text):
            continue
        fresh = render(text)
        if fresh != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    if args.check and stale:
        print("stale settings tables (run tools/settings_tables.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
