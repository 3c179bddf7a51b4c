"""How the shipped UI workflows open in ComfyUI's editor and how its template browser lists them.

The editor: both frontends (1.27, 1.35) restore ``extra.ds`` as the view and draw a graph point at canvas
pixel (graph + offset) * scale; below a scale of 0.6 they draw nodes as empty boxes (no titles, values or
note text). In a 1920x1080 window, canvas pixels x 59..1856, y 90..1002 show on both (1.27's canvas is
1856 x 1002 below a 78 px menu beside a 64 px sidebar; 1.35's fills the window under 38 px of tabs, a
breadcrumb down to y 90 and a 59 px sidebar). A workflow must open readable (scale >= 0.6, notes at the
frontends' own text size), on its first stage, with every group small enough to be seen whole.

The template browser: both frontends list a custom node pack's example workflows under their file names:
the title is the name, the description the name with '-' and '_' shown as spaces, and the order is the
server's (a directory listing) or, on 1.35's "A -> Z", the names' order. Nothing else is read (the
server's /workflow_templates route returns names only), so the names are the titles and carry the order.
"""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / "workflows"
UI_WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
LOW_QUALITY_BELOW = 0.6               # litegraph's low_quality threshold in both frontends
READABLE_SCALE = 1.0                  # note text at the frontends' own 10 px; node titles at 14 px
VISIBLE = (59, 90, 1856, 1002)        # canvas pixels both frontends show in a 1920x1080 window
NODE_TITLE_HEIGHT = 30                # litegraph draws a node's title bar above node.pos
TITLE = re.compile(r"LD-Portrait (\d)\. [A-Z0-9][^_]*")
# Characters a file name that is also a URL path segment and a Windows file name must not hold.
UNSAFE = set('<>:"/\\|?*#%&+') | {chr(c) for c in range(32)}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _ids(paths):
    return [p.stem for p in paths]


def _on_canvas(ds: dict, x: float, y: float) -> tuple[float, float]:
    return (x + ds["offset"][0]) * ds["scale"], (y + ds["offset"][1]) * ds["scale"]


def hidden_parts(workflow: dict, boxes: dict) -> list[str]:
    """Names of the boxes (name -> (x, y, w, h) in graph units) not wholly visible in the saved view."""
    ds = workflow["extra"]["ds"]
    left, top, right, bottom = VISIBLE
    hidden = []
    for name, (x, y, w, h) in boxes.items():
        (x0, y0), (x1, y1) = _on_canvas(ds, x, y), _on_canvas(ds, x + w, y + h)
        if not (left <= x0 and x1 <= right and top <= y0 and y1 <= bottom):
            hidden.append(f"{name} at canvas ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})")
    return hidden


def _group_number(group: dict) -> int | None:
    match = re.match(r"(\d+)\. ", group["title"])
    return int(match.group(1)) if match else None


def title_problems(name: str) -> list[str]:
    """Why a file name would not read as a template title in the browser (empty when it does)."""
    problems = []
    if not TITLE.fullmatch(name):
        problems.append(f"{name!r} is not 'LD-Portrait <n>. <Title in words>' (no '_': the browser shows the name)")
    if UNSAFE & set(name):
        problems.append(f"{name!r} holds characters unsafe in a URL or a Windows file name: {sorted(UNSAFE & set(name))}")
    if len(name.split()) < 4:
        problems.append(f"{name!r} is too short to say what the workflow does")
    return problems


def test_there_are_workflows_to_check():
    assert UI_WORKFLOWS, f"no UI workflows found in {WORKFLOW_DIR}"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_saved_zoom_draws_titles_values_and_readable_notes(path):
    scale = _load(path)["extra"]["ds"]["scale"]
    assert scale >= LOW_QUALITY_BELOW, f"{path.stem}: saved zoom {scale} draws nodes as empty boxes"
    assert READABLE_SCALE <= scale <= 2, f"{path.stem}: saved zoom {scale} shows note text below 10 px (or too large)"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_every_group_fits_the_window_at_the_saved_zoom(path):
    workflow = _load(path)
    scale = workflow["extra"]["ds"]["scale"]
    left, top, right, bottom = VISIBLE
    too_big = [f"{g['title']!r} ({g['bounding'][2] * scale:.0f} x {g['bounding'][3] * scale:.0f} px)"
               for g in workflow["groups"]
               if g["bounding"][2] * scale > right - left or g["bounding"][3] * scale > bottom - top]
    assert not too_big, f"{path.stem}: groups larger than the {right - left} x {bottom - top} px both frontends show: {too_big}"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_saved_view_opens_on_the_read_me_and_the_first_stage(path):
    workflow = _load(path)
    groups = workflow["groups"]
    first = min((g for g in groups if _group_number(g) is not None), key=_group_number)
    assert _group_number(first) == 1, f"{path.stem}: no group '1. ...'"
    top_row = min(g["bounding"][1] for g in groups)
    boxes = {f"group {g['title']!r}": g["bounding"] for g in groups if g["bounding"][1] == top_row}
    assert f"group {first['title']!r}" in boxes, f"{path.stem}: group {first['title']!r} is not in the top row"
    read_me = [n for n in workflow["nodes"] if n["type"] == "Note" and n.get("title", "").startswith("Read me")]
    assert len(read_me) == 1, f"{path.stem}: expected one 'Read me' note"
    x, y = read_me[0]["pos"]
    w, h = read_me[0]["size"]
    boxes["the read-me note"] = (x, y - NODE_TITLE_HEIGHT, w, h + NODE_TITLE_HEIGHT)
    assert x <= min(g["bounding"][0] for g in groups), f"{path.stem}: the read-me note is not at the left"
    hidden = hidden_parts(workflow, boxes)
    assert not hidden, f"{path.stem}: the saved view {workflow['extra']['ds']} hides " + "; ".join(hidden)


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_stages_read_left_to_right_then_top_to_bottom(path):
    groups = [g for g in _load(path)["groups"] if _group_number(g) is not None]
    in_reading_order = sorted(groups, key=lambda g: (g["bounding"][1], g["bounding"][0]))
    numbers = [_group_number(g) for g in in_reading_order]
    assert numbers == list(range(1, len(groups) + 1)), f"{path.stem}: stages in reading order are {numbers}"


def test_checks_catch_the_old_far_out_view():
    """The view shipped before (the whole 20K graph at zoom 0.235) fails the zoom check, and a view that
    is not on the first stage fails the visibility check."""
    path = next(p for p in UI_WORKFLOWS if "20K" in p.stem)
    workflow = _load(path)
    assert 0.235 < LOW_QUALITY_BELOW
    workflow["extra"]["ds"] = {"scale": 1.0, "offset": [-2000, -1500]}
    first = next(g for g in workflow["groups"] if _group_number(g) == 1)
    assert hidden_parts(workflow, {"first": first["bounding"]})


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_template_title_is_written_for_people(path):
    assert not title_problems(path.stem)
    description = re.sub(r"[-_]", " ", path.stem).strip()  # what both frontends show under the title
    assert "  " not in description and "_" not in description


def test_title_check_refuses_file_style_names():
    assert title_problems("ld_portrait_20k_generate")
    assert title_problems("LD-Portrait 2. Generate: the dataset")
    assert title_problems("LD-Portrait 2. Go")
    assert not title_problems("LD-Portrait 2. Generate the 20K matting dataset (SDXL)")


def test_templates_are_numbered_in_the_order_they_are_listed_by_name():
    numbers = [int(TITLE.fullmatch(p.stem).group(1)) for p in UI_WORKFLOWS]
    assert sorted(numbers) == list(range(1, len(UI_WORKFLOWS) + 1)), f"numbers {numbers}: want 1..N, once each"
    assert numbers == sorted(numbers), "sorting the file names (the browser's A -> Z) must give the numbered order"
    assert len(UI_WORKFLOWS) <= 9, "10 or more templates: pad the numbers so '10' sorts after '9'"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_docs_show_the_workflow_on_both_frontends(path):
    """docs/workflows.md shows every template as it opens (tools/workflows_src/screenshots.py makes them)."""
    number = TITLE.fullmatch(path.stem).group(1)
    short = Path(_load(path)["extra"]["ld_portrait"]["api_workflow"]).stem.removeprefix("ld_portrait_")
    page = (REPO / "docs" / "workflows.md").read_text(encoding="utf-8")
    for frontend in ("1.27", "1.35"):
        picture = f"screenshots/frontend_{frontend}_{number}_{short}.jpg"
        assert (REPO / "docs" / picture).is_file(), f"{picture} missing: run tools/workflows_src/screenshots.py"
        assert (REPO / "docs" / picture).stat().st_size < 300 * 1024, f"{picture} is over 300 KB"
        assert picture in page, f"docs/workflows.md does not show {picture}"
