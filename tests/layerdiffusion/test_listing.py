"""Name lists in weight-file error messages."""
from __future__ import annotations

from comfyui_ld_portrait.layerdiffusion.listing import abbreviate, counted_lists


def test_abbreviate_shows_the_first_names_and_counts_the_rest():
    assert abbreviate(["a", "b"], 3) == "a, b"
    assert abbreviate(["a", "b", "c", "d", "e"], 2) == "a, b, ... and 3 more"


def test_counted_lists_skips_empty_groups_and_keeps_the_order():
    groups = (("missing", ["x", "y"]), ("unexpected", []), ("with other shapes", ["z"]))
    assert counted_lists(groups) == ["2 missing (x, y)", "1 with other shapes (z)"]
    assert counted_lists(groups, "{label} {count}: {names}.", 1) == [
        "missing 2: x, ... and 1 more.", "with other shapes 1: z."]
