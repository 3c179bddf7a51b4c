"""Render a small JPEG thumbnail of every shipped UI workflow, for ComfyUI's template browser.

The frontend asks for ``workflows/<name>.jpg`` beside ``workflows/<name>.json``. The picture is drawn
from the graph itself (groups with their colour and title, nodes with their title, links as lines), so
it never shows a stale screenshot. The JPEG carries a comment ``ldp-graph-sha256=<hex>``: the hash of
the scene drawn, so a test can tell when a workflow changed and its thumbnail was not rebuilt.

Run ``python tools/workflows_src/thumbnails.py`` (build_workflows.py calls it after writing the
workflows). Needs only numpy and OpenCV.
"""
import hashlib
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflows"
WIDTH, HEIGHT = 512, 384
JPEG_QUALITY = 85
SUPERSAMPLE = 2                      # draw at 2x, shrink with INTER_AREA: smooth lines at small size
MARGIN = 10                          # thumbnail pixels around the graph
NODE_TITLE_HEIGHT = 30               # litegraph draws a node's title bar above its pos
GROUP_TITLE_HEIGHT = 34              # a group's title bar lies inside the top of its bounding box
COMMENT_KEY = "ldp-graph-sha256="
RENDER_VERSION = 1                   # bump when the drawing changes, so every thumbnail is rebuilt

BACKGROUND = "#202020"
NODE_BODY, NODE_TITLE_BAR, NODE_EDGE = "#353535", "#222222", "#555555"
TEXT, NOTE_TEXT = "#dddddd", "#f0e0c0"
NOTE_LINES = "#8a7a60"               # the grey lines that stand for a note's text
# litegraph's link colours by type, so the thumbnail reads like the editor
LINK_COLOURS = {"IMAGE": "#64b5f6", "MASK": "#81c784", "LATENT": "#ff9cf9", "MODEL": "#b39ddb",
               "CLIP": "#ffd500", "CONDITIONING": "#ffa931", "VAE": "#ff6e6e", "INT": "#aaaaaa"}
DEFAULT_LINK = "#9a9a9a"


def _bgr(colour: str) -> tuple:
    """'#rgb' or '#rrggbb' -> (b, g, r) ints 0..255."""
    c = colour.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    if not re.fullmatch(r"[0-9a-fA-F]{6}", c):
        raise ValueError(f"not a colour: {color!r} (expected #rgb or #rrggbb)")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    return (b, g, r)


def _node_label(node: dict) -> str:
    """The node's own title, else its type without the LDP prefix, split at capitals."""
    if node.get("title"):
        return node["title"]
    name = re.sub(r"^LDP", "", node["type"])
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)


def scene(workflow: dict) -> dict:
    """What the thumbnail draws, in graph units: the single source for drawing and for the hash.

    Returns
    -------
    dict with ``groups`` [(x, y, w, h, colour, title)], ``nodes`` [(x, y, w, h, label, is_note,
    bgcolor)] (y is the top of the title bar) and ``links`` [(x0, y0, x1, y1, type)].
    """
    groups = [(*map(float, g["bounding"]), g.get("color") or "#3f789e", g.get("title", ""))
              for g in workflow.get("groups", [])]
    nodes, by_id = [], {}
    for n in workflow["nodes"]:
        x, y = map(float, n["pos"]); w, h = map(float, n["size"])
        by_id[n["id"]] = (x, y, w, h)
        nodes.append((x, y - NODE_TITLE_HEIGHT, w, h + NODE_TITLE_HEIGHT, _node_label(n),
                      n["type"] in ("Note", "MarkdownNote"), n.get("bgcolor") or NODE_BODY))
    links = []
    for _lid, src, src_slot, dst, dst_slot, link_type in workflow.get("links", []):
        if src not in by_id or dst not in by_id:
            continue
        sx, sy, sw, _ = by_id[src]; dx, dy, _, _ = by_id[dst]
        links.append((sx + sw, sy + 14 + 22 * src_slot, dx, dy + 14 + 22 * dst_slot, str(link_type)))
    return {"render_version": RENDER_VERSION, "size": [WIDTH, HEIGHT], "groups": groups, "nodes": nodes,
            "links": links}


def scene_hash(workflow: dict) -> str:
    """sha256 of the scene drawn; changes whenever the picture would."""
    text = json.dumps(scene(workflow), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fit_text(text: str, max_width: int, font_scale: float, thickness: int) -> str:
    """Shorten text with '..' until it fits max_width pixels (may return '')."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    while text and cv2.getTextSize(text, font, font_scale, thickness)[0][0] > max_width:
        text = text[:-3].rstrip() + ".." if len(text) > 3 else ""
    return text


def _blend_rect(img, p0, p1, colour, opacity):
    x0, y0 = max(p0[0], 0), max(p0[1], 0)
    x1, y1 = min(p1[0], img.shape[1]), min(p1[1], img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1 - opacity) + np.array(colour, np.float32) * opacity).astype(np.uint8)


def _frame(s: dict) -> tuple[float, float, float]:
    """(scale, ox, oy) mapping graph units to supersampled pixels: pixel = graph * scale + offset."""
    boxes = [g[:4] for g in s["groups"]] + [n[:4] for n in s["nodes"]]
    if not boxes:
        raise ValueError("workflow has no nodes and no groups: nothing to draw")
    x0 = min(b[0] for b in boxes); y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes); y1 = max(b[1] + b[3] for b in boxes)
    k = SUPERSAMPLE
    W, H, m = WIDTH * k, HEIGHT * k, MARGIN * k
    scale = min((W - 2 * m) / (x1 - x0), (H - 2 * m) / (y1 - y0))
    ox = (W - (x1 - x0) * scale) / 2 - x0 * scale
    oy = (H - (y1 - y0) * scale) / 2 - y0 * scale
    return scale, ox, oy


def layout(workflow: dict) -> dict:
    """Where render() puts each group and node, in thumbnail pixels (after the supersampled picture is
    shrunk), with the colour it fills them with: for checks that must not depend on how a library draws
    text or encodes JPEG.

    Returns
    -------
    dict with ``groups`` [((x0, y0, x1, y1), title_bar_bottom, body_bgr)] (body_bgr: the group colour
    blended over the background, as drawn), ``nodes`` [((x0, y0, x1, y1), title_bar_bottom, body_bgr,
    is_note)], ``links`` [((x0, y0), (x1, y1))] (drawn as straight lines), ``background`` (bgr) and ``note_lines`` (bgr:
    the lines drawn across a note's body, so it holds blends of its body colour and this one). Coordinates are floats; boxes include their outline.
    """
    s = scene(workflow)
    scale, ox, oy = _frame(s)
    k = SUPERSAMPLE

    def box(x, y, w, h):
        return ((x * scale + ox) / k, (y * scale + oy) / k, ((x + w) * scale + ox) / k, ((y + h) * scale + oy) / k)

    background = np.array(_bgr(BACKGROUND), np.float32)
    group_bar = max(int(GROUP_TITLE_HEIGHT * scale), 13 * k) / k
    node_bar = max(int(NODE_TITLE_HEIGHT * scale), 10 * k) / k
    groups = []
    for gx, gy, gw, gh, colour, _title in s["groups"]:
        b = box(gx, gy, gw, gh)
        body = tuple(float(v) for v in background * (1 - 0.22) + np.array(_bgr(colour), np.float32) * 0.22)
        groups.append((b, b[1] + group_bar, body))
    nodes = [(box(nx, ny, nw, nh), box(nx, ny, nw, nh)[1] + node_bar, tuple(map(float, _bgr(body))), is_note)
             for nx, ny, nw, nh, _label, is_note, body in s["nodes"]]
    links = [(((x0 * scale + ox) / k, (y0 * scale + oy) / k), ((x1 * scale + ox) / k, (y1 * scale + oy) / k))
             for x0, y0, x1, y1, _type in s["links"]]
    return {"groups": groups, "nodes": nodes, "links": links, "background": tuple(map(float, background)),
            "note_lines": tuple(map(float, _bgr(NOTE_LINES)))}


def render(workflow: dict) -> np.ndarray:
    """Draw the workflow's graph.

    Returns
    -------
    np.ndarray, uint8 BGR, shape (HEIGHT, WIDTH, 3).
    """
    s = scene(workflow)
    scale, ox, oy = _frame(s)
    k = SUPERSAMPLE
    W, H = WIDTH * k, HEIGHT * k

    def pt(x, y):
        return (int(round(x * scale + ox)), int(round(y * scale + oy)))

    img = np.full((H, W, 3), _bgr(BACKGROUND), np.uint8)
    font, aa = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
    group_bar = max(int(GROUP_TITLE_HEIGHT * scale), 13 * k)
    for gx, gy, gw, gh, colour, title in s["groups"]:
        p0, p1 = pt(gx, gy), pt(gx + gw, gy + gh)
        _blend_rect(img, p0, p1, _bgr(colour), 0.22)
        _blend_rect(img, p0, (p1[0], p0[1] + group_bar), _bgr(colour), 0.65)
        cv2.rectangle(img, p0, p1, _bgr(colour), k, aa)
    for lx0, ly0, lx1, ly1, link_type in s["links"]:
        cv2.line(img, pt(lx0, ly0), pt(lx1, ly1), _bgr(LINK_COLOURS.get(link_type, DEFAULT_LINK)), k, aa)
    node_bar = max(int(NODE_TITLE_HEIGHT * scale), 10 * k)
    for nx, ny, nw, nh, label, is_note, body in s["nodes"]:
        p0, p1 = pt(nx, ny), pt(nx + nw, ny + nh)
        cv2.rectangle(img, p0, p1, _bgr(body), -1)
        cv2.rectangle(img, p0, (p1[0], p0[1] + node_bar), _bgr(NODE_TITLE_BAR), -1)
        cv2.rectangle(img, p0, p1, _bgr(NODE_EDGE), 1, aa)
        if is_note:  # a few grey lines stand for the note's text
            for ty in range(p0[1] + node_bar + 5 * k, p1[1] - 4 * k, 6 * k):
                cv2.line(img, (p0[0] + 4 * k, ty), (p1[0] - 4 * k, ty), _bgr(NOTE_LINES), 1, aa)
        text = _fit_text(label, p1[0] - p0[0] - 6 * k, 0.30 * k, 1)
        cv2.putText(img, text, (p0[0] + 3 * k, p0[1] + node_bar - 3 * k), font, 0.30 * k,
                    _bgr(NOTE_TEXT if is_note else TEXT), 1, aa)
    for gx, gy, gw, gh, colour, title in s["groups"]:  # group titles last: they must stay readable
        p0, p1 = pt(gx, gy), pt(gx + gw, gy + gh)
        text = _fit_text(title, p1[0] - p0[0] - 4 * k, 0.34 * k, k)
        cv2.putText(img, text, (p0[0] + 2 * k, p0[1] + group_bar - 3 * k), font, 0.34 * k, (255, 255, 255), k, aa)
    return cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def encode(workflow: dict) -> bytes:
    """JPEG bytes of render(workflow) with the scene hash in a JPEG comment (COM) segment."""
    ok, buf = cv2.imencode(".jpg", render(workflow), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                                                       cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise RuntimeError("OpenCV could not encode the thumbnail as JPEG")
    data = buf.tobytes()
    comment = (COMMENT_KEY + scene_hash(workflow)).encode("ascii")
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:2] + segment + data[2:]  # right after SOI


def read_comment(data: bytes) -> str | None:
    """The first JPEG comment (COM) of data, or None; raises ValueError when data is not a JPEG."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xFE:
            return data[i + 4:i + 2 + length].decode("ascii", "replace")
        if marker == 0xDA:  # start of scan: no more header segments
            return None
        i += 2 + length
    return None


def write_thumbnails(workflow_dir: Path = WORKFLOW_DIR) -> list[Path]:
    """Write <name>.jpg beside every UI workflow <name>.json of workflow_dir; returns the paths."""
    written = []
    for path in sorted(Path(workflow_dir).glob("*.json")):
        workflow = json.loads(path.read_text(encoding="utf-8"))
        out = path.with_suffix(".jpg")
        out.write_bytes(encode(workflow))
        written.append(out)
    return written


if __name__ == "__main__":
    for p in write_thumbnails(Path(sys.argv[1]) if len(sys.argv) > 1 else WORKFLOW_DIR):
        print(f"thumbnail {p.name}: {p.stat().st_size // 1024} KB")
