"""Template-browser thumbnails of the shipped UI workflows.

ComfyUI's template browser loads ``workflows/<name>.jpg`` beside ``workflows/<name>.json``; the thumbnail
must exist, be small, and show the graph as it is now. The checks compare the picture with the graph's
geometry (where each group and node box lies and the colour it is filled with), never with a fresh
rendering: how a library draws text or encodes JPEG changes between versions (OpenCV 5.0 -> 5.1 moved
rendered text by up to 140 grey levels), the boxes of the graph do not.
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
# A region matches when at most this share of its pixels differ from its colour by more than
# COLOUR_TOLERANCE (0..255, any channel) from the nearest blend of its colours. Measured on the shipped
# thumbnails, and on fresh renderings with OpenCV 5.1: <= 0.03 (JPEG noise); the group '1. ...' moved by
# (200, 150) graph units: >= 0.48; a node moved by 100 units: 0.04 to 0.46 by graph size, 0.37 in the
# refine-folder graph that test_stale_thumbnail_is_detected uses.
COLOUR_TOLERANCE = 24
MAX_MISMATCHED_SHARE = 0.10
MIN_REGION_PIXELS = 20                # smaller regions (a sliver between boxes) say nothing
LINK_CLEARANCE = 2.5                  # thumbnail pixels around each link line left out of the regions
EDGE_CLEARANCE = 2                    # pixels inside a box's outline left out (anti-aliased edges)

_spec = importlib.util.spec_from_file_location("ldp_thumbnails", REPO / "tools" / "workflows_src" / "thumbnails.py")
thumbnails = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(thumbnails)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the thumbnail does not decode as an image"
    return image


def _regions(workflow: dict, shape) -> list[tuple[str, np.ndarray, tuple, tuple]]:
    """(name, mask, expected BGR, other BGR) of the text-free areas of the thumbnail of ``workflow``: each node's
    body below its title bar, each group's body around its nodes, and the background. Title bars (where
    text is drawn), outlines and link lines are left out. A region's pixels may hold any blend of the
    expected colour and the other one (a note's body and the lines across it; the same colour twice
    elsewhere)."""
    layout = thumbnails.layout(workflow)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5

    def inside(box, inset):
        x0, y0, x1, y1 = box
        return (xx >= x0 + inset) & (xx <= x1 - inset) & (yy >= y0 + inset) & (yy <= y1 - inset)

    near_link = np.zeros((h, w), bool)
    for (x0, y0), (x1, y1) in layout["links"]:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        near_link |= (xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2 <= LINK_CLEARANCE ** 2
    near_node = np.zeros((h, w), bool)
    for box, *_ in layout["nodes"]:
        near_node |= inside(box, -EDGE_CLEARANCE)
    near_group = np.zeros((h, w), bool)
    regions = []
    for i, (box, title_bottom, colour, is_note) in enumerate(layout["nodes"]):
        regions.append((f"node {workflow['nodes'][i].get('title') or workflow['nodes'][i]['type']!r}",
                        inside((box[0], title_bottom, box[2], box[3]), EDGE_CLEARANCE), colour,
                        layout["note_lines"] if is_note else colour))
    for i, (box, title_bottom, colour) in enumerate(layout["groups"]):
        near_group |= inside(box, -EDGE_CLEARANCE)
        body = inside((box[0], title_bottom, box[2], box[3]), EDGE_CLEARANCE) & ~near_node & ~near_link
        regions.append((f"group {workflow['groups'][i]['title']!r}", body, colour, colour))
    regions.append(("background", ~(near_group | near_node | near_link), layout["background"], layout["background"]))
    return [r for r in regions if r[1].sum() >= MIN_REGION_PIXELS]


def mismatches(workflow: dict, image: np.ndarray) -> list[str]:
    """Regions of ``image`` that do not show what ``workflow``'s geometry puts there."""
    found = []
    for name, mask, colour, other in _regions(workflow, image.shape):
        pixels = image[mask].astype(np.float32)
        a, b = np.array(colour, np.float32), np.array(other, np.float32)
        # distance to the nearest blend a + t (b - a), t in 0..1
        t = np.clip((pixels - a) @ (b - a) / max(float((b - a) @ (b - a)), 1e-6), 0, 1)[:, None]
        off = np.abs(pixels - (a + t * (b - a))).max(axis=1) > COLOUR_TOLERANCE
        if off.mean() > MAX_MISMATCHED_SHARE:
            found.append(f"{name}: {off.mean():.0%} of {mask.sum()} pixels are not {tuple(round(c) for c in colour)}")
    return found


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
    image = _decode(data)
    h, w = image.shape[:2]
    assert (w, h) == MAX_SIZE, (w, h)
    assert image.std() > 10, f"{jpg.name} is nearly blank"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=_ids(UI_WORKFLOWS))
def test_thumbnail_was_rendered_from_the_current_graph(path):
    workflow = _load(path)
    data = path.with_suffix(".jpg").read_bytes()
    rebuild = "rebuild it with python tools/workflows_src/build_workflows.py"
    comment = thumbnails.read_comment(data)
    assert comment == thumbnails.COMMENT_KEY + thumbnails.scene_hash(workflow), f"{path.stem}.jpg is stale: {rebuild}"
    problems = mismatches(workflow, _decode(data))
    assert not problems, f"{path.stem}.jpg does not show this graph ({rebuild}): " + "; ".join(problems)


def test_every_group_and_node_is_checked_somewhere():
    """The regions cover every group and node of a real workflow, so a moved one cannot slip through."""
    path = next(p for p in UI_WORKFLOWS if "Refine a folder" in p.stem)
    workflow = _load(path)
    names = {name for name, *_ in _regions(workflow, (MAX_SIZE[1], MAX_SIZE[0]))}
    assert {f"group {g['title']!r}" for g in workflow["groups"]} <= names
    assert sum(name.startswith("node ") for name in names) == len(workflow["nodes"])
    assert "background" in names


def test_stale_thumbnail_is_detected():
    """A moved group or node, or a renamed node, changes the hash; moved boxes no longer match the picture."""
    path = next(p for p in UI_WORKFLOWS if "Refine a folder" in p.stem)
    workflow = _load(path)
    shipped = _decode(path.with_suffix(".jpg").read_bytes())
    moved_group = copy.deepcopy(workflow)
    moved_group["groups"][0]["bounding"][0] += 200
    moved_group["groups"][0]["bounding"][1] += 150
    assert thumbnails.scene_hash(moved_group) != thumbnails.scene_hash(workflow)
    assert any("group" in problem for problem in mismatches(moved_group, shipped))
    renamed = copy.deepcopy(workflow)
    renamed["nodes"][1]["title"] = "a different title"
    assert thumbnails.scene_hash(renamed) != thumbnails.scene_hash(workflow)
    moved_node = copy.deepcopy(workflow)
    moved_node["nodes"][3]["pos"][0] += 100
    assert mismatches(moved_node, shipped)
    other = next(p for p in UI_WORKFLOWS if p != path)
    assert mismatches(workflow, _decode(other.with_suffix(".jpg").read_bytes())), "another graph's thumbnail passed"


def test_check_ignores_how_text_is_drawn():
    """Text drawn anywhere in title bars (another font, another library version) changes nothing."""
    path = next(p for p in UI_WORKFLOWS if "Refine a folder" in p.stem)
    workflow = _load(path)
    image = _decode(path.with_suffix(".jpg").read_bytes())
    scribbled = image.copy()
    for box, title_bottom, *_ in thumbnails.layout(workflow)["nodes"] + thumbnails.layout(workflow)["groups"]:
        x0, y0, x1 = int(box[0]) + 1, int(box[1]) + 1, int(box[2]) - 1
        scribbled[y0:int(title_bottom), x0:x1:2] = 255  # every other column white: nothing like the real text
    assert not mismatches(workflow, scribbled)


def test_comment_reader_rejects_what_is_not_a_jpeg(tmp_path):
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="not a JPEG"):
        thumbnails.read_comment(png.tobytes())
    ok, plain = cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))
    assert thumbnails.read_comment(plain.tobytes()) is None
