"""Template-browser thumbnails and the saved view of the shipped UI workflows.

ComfyUI's template browser loads ``workflows/<name>.jpg`` beside ``workflows/<name>.json``; the thumbnail
must exist, be small, and show the graph as it is now. The saved view (``extra.ds``) must show every group
title and every note when the workflow opens in a 1280x720 window on frontend 1.27 (1240x680 canvas) and
1.35 (top ~80 px and left ~50 px of the canvas covered by tabs, top bar and sidebar).
"""
import copy
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / "workflows"
UI_WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
MAX_BYTES = 60 * 1024
MAX_SIZE = (512, 384)                 # width, height
# After a 5x5 blur, JPEG noise between a fresh render and the shipped file stays under ~47 grey levels
# (measured on all shipped workflows); a moved group or node leaves a local difference of 100+
# (checked by test_stale_thumbnail_is_detected).
BLURRED_DIFF_TOLERANCE = 60.0

# The visible canvas area at load time in a 1280x720 window, in canvas pixels, on both frontends:
# 1.35 draws the canvas under the whole window and covers its top ~80 px (tabs, top bar) and left ~50 px
# (sidebar); 1.27 places a 1240x680 canvas 40 px right of and below the window's corner.
WINDOW_W, WINDOW_H, TOP_BAR, SIDEBAR = 1240, 680, 80, 50
NODE_TITLE_HEIGHT = 30                # litegraph draws a node's title bar above node.pos

_spec = importlib.util.spec_from_file_location("ldp_thumbnails", REPO / "tools" / "workflows_src" / "thumbnails.py")
thumbnails = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(thumbnails)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _blurred_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest per-pixel difference (0..255) of two BGR pictures after a 5x5 blur that hides JPEG noise."""
    a = cv2.GaussianBlur(a.astype(np.float32), (5, 5), 0)
    b = cv2.GaussianBlur(b.astype(np.float32), (5, 5), 0)
    return float(np.abs(a - b).max())


def _ids(paths):
    return [p.stem for p in paths]


def test_there_are_workflows_to_check():
    assert UI_WORKFLOWS, f"no UI workflows found in {WORKFLOW_DIR}"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_every_ui_workflow_has_a_small_decodable_thumbnail(path):
    jpg = path.with_suffix(".jpg")
    assert jpg.is_file(), f"{jpg.name} missing: run python tools/workflows_src/build_workflows.py"
    data = jpg.read_bytes()
    assert len(data) < MAX_BYTES, f"{jpg.name} is {len(data)} bytes"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, f"{jpg.name} does not decode"
    h, w = image.shape[:2]
    assert w <= MAX_SIZE[0] and h <= MAX_SIZE[1], (w, h)
    assert image.std() > 10, f"{jpg.name} is nearly blank"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_thumbnail_was_rendered_from_the_current_graph(path):
    workflow = _load(path)
    data = path.with_suffix(".jpg").read_bytes()
    comment = thumbnails.read_comment(data)
    rebuild = "rebuild it with python tools/workflows_src/build_workflows.py"
    assert comment == thumbnails.COMMENT_KEY + thumbnails.scene_hash(workflow), f"{path.stem}.jpg is stale: {rebuild}"
    shipped = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    fresh = thumbnails.render(workflow)
    assert fresh.shape == shipped.shape
    assert _blurred_difference(fresh, shipped) < BLURRED_DIFF_TOLERANCE, f"{path.stem}.jpg does not show this graph: {rebuild}"


def test_stale_thumbnail_is_detected():
    """Moving a group or node, or renaming a node, changes the hash; moving also changes the picture."""
    path = WORKFLOW_DIR / "ld_portrait_refine_folder.json"
    workflow = _load(path)
    edited = copy.deepcopy(workflow)
    group = edited["groups"][0]
    group["bounding"][0] += 200
    group["bounding"][1] += 150
    assert thumbnails.scene_hash(edited) != thumbnails.scene_hash(workflow)
    renamed = copy.deepcopy(workflow)
    renamed["nodes"][1]["title"] = "a different title"
    assert thumbnails.scene_hash(renamed) != thumbnails.scene_hash(workflow)
    shipped = cv2.imdecode(np.frombuffer(path.with_suffix(".jpg").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert _blurred_difference(thumbnails.render(edited), shipped) > BLURRED_DIFF_TOLERANCE
    shifted = copy.deepcopy(workflow)
    shifted["nodes"][3]["pos"][0] += 100
    assert _blurred_difference(thumbnails.render(shifted), shipped) > BLURRED_DIFF_TOLERANCE


def test_comment_reader_rejects_what_is_not_a_jpeg(tmp_path):
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="not a JPEG"):
        thumbnails.read_comment(png.tobytes())
    ok, plain = cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))
    assert thumbnails.read_comment(plain.tobytes()) is None


def _to_screen(ds: dict, x: float, y: float) -> tuple[float, float]:
    # Both frontends (1.27 and 1.35) restore extra.ds verbatim into canvas.ds and draw with
    # DragAndScale.convertOffsetToCanvas: canvas = (graph + offset) * scale.
    return (x + ds["offset"][0]) * ds["scale"], (y + ds["offset"][1]) * ds["scale"]


def _visible(point) -> bool:
    x, y = point
    return SIDEBAR <= x <= WINDOW_W and TOP_BAR <= y <= WINDOW_H


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_saved_view_shows_every_group_title_and_note(path):
    workflow = _load(path)
    ds = workflow["extra"]["ds"]
    assert 0.1 <= ds["scale"] <= 2, ds  # litegraph's zoom range
    hidden = []
    for group in workflow["groups"]:
        x, y, w, h = group["bounding"]
        for corner in ((x, y), (x + w, y + h)):
            if not _visible(_to_screen(ds, *corner)):
                hidden.append(f"group {group['title']!r} corner {corner}")
    notes = [n for n in workflow["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    assert notes, f"{path.stem} has no read-me note"
    for node in notes:
        x, y = node["pos"]
        w, h = node["size"]
        for corner in ((x, y - NODE_TITLE_HEIGHT), (x + w, y + h)):
            if not _visible(_to_screen(ds, *corner)):
                hidden.append(f"note {node.get('title')!r} corner {corner}")
    assert not hidden, f"{path.stem}: saved view {ds} hides " + "; ".join(hidden)


def test_old_default_view_would_fail_the_check():
    """The view shipped before (scale 0.6, offset [80, 120]) hid titles under the 1.35 chrome."""
    workflow = _load(WORKFLOW_DIR / "ld_portrait_refine_folder.json")
    old = {"scale": 0.6, "offset": [80, 120]}
    top_left = min(g["bounding"][1] for g in workflow["groups"])
    x0 = min(g["bounding"][0] for g in workflow["groups"])
    right = max(g["bounding"][0] + g["bounding"][2] for g in workflow["groups"])
    points = [_to_screen(old, x0, top_left), _to_screen(old, right, top_left)]
    assert not all(_visible(p) for p in points)
