"""Graph model shared by build_workflows.py: one description -> UI and API workflow JSON.

The node specs and the checks come from tests/workflows/test_workflows.py, so the generator and the test
can never disagree about what a valid workflow is.
"""
import importlib.util
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ldp_test_workflows", REPO / "tests" / "workflows" / "test_workflows.py")
T = importlib.util.module_from_spec(spec); sys.modules[spec.name] = T; spec.loader.exec_module(T)
from comfyui_ld_portrait.nodes import layerdiffusion as LDN

def spec_of(type_name):
    s = T.node_spec(type_name)
    if s is None and type_name in LDN.NODE_CLASS_MAPPINGS:
        cls = LDN.NODE_CLASS_MAPPINGS[type_name]
        s = T.make_spec(type_name, cls.INPUT_TYPES(), cls.RETURN_TYPES, getattr(cls, "RETURN_NAMES", None))
    return s

def display_name(type_name):
    from comfyui_ld_portrait import NODE_DISPLAY_NAME_MAPPINGS as D
    names = {**D, **LDN.NODE_DISPLAY_NAME_MAPPINGS}
    return names.get(type_name, type_name)

NOTE_COLOUR, NOTE_BG = "#432", "#653"
# The saved view (extra.ds) is what a 1920x1080 window shows when the workflow opens. ComfyUI's frontends
# draw at canvas = (graph + offset) * scale. Measured in that window: 1.27's canvas is 1856 x 1002 px, below
# its 78 px menu and right of its 64 px sidebar; 1.35's canvas fills the window, under 38 px of tabs, a
# floating breadcrumb down to y 90 and a 59 px sidebar. Canvas pixels x 59..1856, y 90..1002 show on both.
# Below a zoom of 0.6 both draw nodes as empty boxes (no titles, values or note text): the view stays at
# VIEW_MIN_SCALE or more and the groups are laid out in rows that fit the window at that zoom, so a reader
# scrolls down through the stages instead of zooming.
VIEW_LEFT, VIEW_TOP, VIEW_RIGHT, VIEW_BOTTOM, VIEW_MARGIN = 59, 90, 1856, 1002, 10
VIEW_MIN_SCALE, VIEW_MAX_SCALE = 1.0, 1.0  # 1.0: note text at the frontends' own size (10 px), as in a new graph
GROUP_PAD, GROUP_HEADER = 20, 36      # Graph.group: padding around members, title band above them
BLOCK_GAP, NODE_GAP = 50, 40          # between groups; between nodes inside a group


def visible_area():
    """(left, top, width, height) of the canvas area a 1920x1080 window shows on both frontends, less a
    margin, in canvas pixels."""
    left, top = VIEW_LEFT + VIEW_MARGIN, VIEW_TOP + VIEW_MARGIN
    return left, top, VIEW_RIGHT - VIEW_MARGIN - left, VIEW_BOTTOM - VIEW_MARGIN - top


# A Note's text area at zoom 1 (both frontends' default 10 px monospace font): characters per graph unit of
# width and graph units per line, with the title bar and padding around the text.
NOTE_CHAR_WIDTH, NOTE_LINE_HEIGHT, NOTE_PADDING = 6.1, 12.5, 40


def note_height(text, width):
    """Height that shows all of a note's text without scrolling, at its width (words wrap as in a
    textarea), with a little room to spare."""
    per_line = max(10, int((width - 24) / NOTE_CHAR_WIDTH))
    lines = sum(max(1, len(textwrap.wrap(paragraph, per_line))) for paragraph in text.split("\n"))
    return int(lines * NOTE_LINE_HEIGHT * 1.05 + NOTE_PADDING)


def saved_view(nodes, groups):
    """extra.ds {"scale", "offset"}: the whole graph when it fits at VIEW_MIN_SCALE or more (centred, at
    most VIEW_MAX_SCALE), else VIEW_MIN_SCALE with the graph's top-left corner (the first stage) at the
    top-left of the visible area."""
    boxes = [(n["pos"][0], n["pos"][1] - T.TITLE_HEIGHT, n["size"][0], n["size"][1] + T.TITLE_HEIGHT) for n in nodes]
    boxes += [tuple(g["bounding"]) for g in groups]
    x0 = min(b[0] for b in boxes); y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes); y1 = max(b[1] + b[3] for b in boxes)
    left, top, width, height = visible_area()
    fit = min(width / (x1 - x0), height / (y1 - y0))
    if fit >= VIEW_MIN_SCALE:
        scale = int(min(VIEW_MAX_SCALE, fit) * 1000) / 1000  # round down: the rounded view still fits
        offset = [round(left / scale + (width / scale - (x1 - x0)) / 2 - x0, 1),
                  round(top / scale + (height / scale - (y1 - y0)) / 2 - y0, 1)]
    else:
        scale = VIEW_MIN_SCALE
        offset = [round(left / scale - x0, 1), round(top / scale - y0, 1)]
    return {"scale": scale, "offset": offset}

class Graph:
    def __init__(self):
        self.nodes = []      # dicts
        self.links = []      # (id, src, slot, dst, input name)
        self.groups = []
        self.next_id = 1

    def node(self, type_name, pos, widgets=None, title=None, size=None, controls=None, api_widgets=None, models=None):
        """widgets: name -> value (UI and API); api_widgets: optional widget names to write in API."""
        nid = self.next_id; self.next_id += 1
        self.nodes.append(dict(id=nid, type=type_name, pos=list(pos or (0, 0)), widgets=dict(widgets or {}),
                               title=title, size=size, controls=dict(controls or {}),
                               api_widgets=set(api_widgets or ()), models=models))
        return nid

    def note(self, pos, size, text, title=None):
        nid = self.next_id; self.next_id += 1
        self.nodes.append(dict(id=nid, type="Note", pos=list(pos or (0, 0)), size=list(size), text=text,
                               title=title, widgets={}, controls={}, api_widgets=set()))
        return nid

    def link(self, src, slot, dst, name):
        self.links.append((len(self.links) + 1, src, slot, dst, name))

    def group(self, title, members, colour="#3f789e", pad=GROUP_PAD):
        self.groups.append((title, members, colour, pad))

    # ---------------------------------------------------------------------------------
    def _by_id(self):
        return {n["id"]: n for n in self.nodes}

    def _order(self):
        deps = {n["id"]: set() for n in self.nodes}
        for _, s, _, d, _ in self.links:
            deps[d].add(s)
        order, done = {}, set()
        ids = [n["id"] for n in self.nodes]
        # notes first (no deps), then topological, stable by id
        while len(done) < len(ids):
            ready = [i for i in ids if i not in done and deps[i] <= done]
            assert ready, "cycle"
            ready.sort(key=lambda i: (self._by_id()[i]["type"] not in ("Note",), i))
            for i in ready:
                order[i] = len(order); done.add(i)
        return order

    def size_of(self, n, spec):
        if n.get("size"):
            return list(n["size"])
        linked = {name for (_, _, _, d, name) in self.links if d == n["id"]}
        sockets = [i for i in spec.inputs if not i.is_widget or i.name in linked]
        slots = max(len(sockets), len(spec.outputs))
        h = 8 + 22 * slots
        for w in spec.widgets:
            h += 120 if w.options.get("multiline") else 26
            if w.has_control:
                h += 26
        return [n.get("width", 320), h]

    def ui(self):
        by_id = self._by_id(); order = self._order()
        out_nodes = []
        link_rows = []
        # inputs per node
        incoming = {}
        for lid, s, slot, d, name in self.links:
            incoming.setdefault(d, {})[name] = (lid, s, slot)
        outgoing = {}
        for lid, s, slot, d, name in self.links:
            outgoing.setdefault((s, slot), []).append(lid)
        slot_of = {}
        for n in self.nodes:
            spec = spec_of(n["type"])
            entry = {"id": n["id"], "type": n["type"], "pos": n["pos"]}
            if n["type"] == "Note":
                entry.update(size=n["size"], flags={}, order=order[n["id"]], mode=0, inputs=[], outputs=[],
                             properties={}, widgets_values=[n["text"]], color=NOTE_COLOUR, bgcolor=NOTE_BG)
                if n["title"]:
                    entry["title"] = n["title"]
                out_nodes.append(entry); continue
            inc = incoming.get(n["id"], {})
            inputs = []
            for i in spec.inputs:
                if i.is_widget and i.name not in inc:
                    continue
                item = {"name": i.name, "type": i.type}
                if not i.required:
                    item["shape"] = 7
                if i.is_widget:
                    item["widget"] = {"name": i.name}
                item["link"] = inc[i.name][0] if i.name in inc else None
                slot_of[(n["id"], i.name)] = len(inputs)
                inputs.append(item)
            for name in inc:
                assert name in spec.by_name, (n["type"], name)
            outputs = []
            for k, (t, name) in enumerate(zip(spec.outputs, spec.output_names)):
                outputs.append({"name": name, "type": t, "links": outgoing.get((n["id"], k), []), "slot_index": k})
            values = []
            for w in spec.widgets:
                v = n["widgets"].get(w.name, w.default)
                values.append(v)
                if w.has_control:
                    values.append(n["controls"].get(w.name, "fixed"))
            entry.update(size=self.size_of(n, spec), flags={}, order=order[n["id"]], mode=0,
                         inputs=inputs, outputs=outputs,
                         properties={"Node name for S&R": n["type"], **({"models": n["models"]} if n.get("models") else {})},
                         widgets_values=values)
            if n["title"]:
                entry["title"] = n["title"]
            out_nodes.append(entry)
        for lid, s, slot, d, name in self.links:
            t = spec_of(by_id[s]["type"]).outputs[slot]
            link_rows.append([lid, s, slot, d, slot_of[(d, name)], t])
        groups = []
        sizes = {e["id"]: e["size"] for e in out_nodes}
        for gi, (title, members, colour, pad) in enumerate(self.groups, 1):
            x0 = min(by_id[m]["pos"][0] for m in members) - pad
            y0 = min(by_id[m]["pos"][1] for m in members) - T.TITLE_HEIGHT - pad - GROUP_HEADER
            x1 = max(by_id[m]["pos"][0] + sizes[m][0] for m in members) + pad
            y1 = max(by_id[m]["pos"][1] + sizes[m][1] for m in members) + pad
            groups.append({"id": gi, "title": title, "bounding": [x0, y0, x1 - x0, y1 - y0],
                           "color": colour, "font_size": 24, "flags": {}})
        return {"last_node_id": max(by_id), "last_link_id": len(self.links), "nodes": out_nodes,
                "links": link_rows, "groups": groups, "config": {},
                "extra": {"ds": saved_view(out_nodes, groups)}, "version": 0.4}

    def api(self):
        out = {}
        incoming = {}
        for lid, s, slot, d, name in self.links:
            incoming.setdefault(d, {})[name] = [str(s), slot]
        for n in self.nodes:
            spec = spec_of(n["type"])
            if spec.ui_only:
                continue
            inputs = {}
            inc = incoming.get(n["id"], {})
            for i in spec.inputs:
                if i.name in inc:
                    inputs[i.name] = inc[i.name]
                elif i.is_widget and (i.required or i.name in n["widgets"] or i.name in n["api_widgets"]):
                    inputs[i.name] = n["widgets"].get(i.name, i.default)
            out[str(n["id"])] = {"class_type": n["type"], "inputs": inputs,
                                 "_meta": {"title": n["title"] or display_name(n["type"])}}
        return out


def arrange(g, blocks):
    """Place nodes and create groups: blocks is a list of (group title or None, columns), each column a
    list of node ids stacked top-down, columns side by side inside the block. Blocks flow left to right
    in rows no wider than the window shows at VIEW_MIN_SCALE (first block top-left); a block with a title
    becomes a group. Every block must fit the window at that zoom (checked here and by the tests)."""
    by_id = g._by_id()
    _, _, view_w, view_h = visible_area()
    max_w, max_h = view_w / VIEW_MIN_SCALE, view_h / VIEW_MIN_SCALE

    def column_size(col):
        sizes = []
        for nid in col:
            n = by_id[nid]
            n["size"] = list(n["size"]) if n.get("size") else g.size_of(n, spec_of(n["type"]))
            if n["type"] == "Note":
                n["size"][1] = note_height(n["text"], n["size"][0])
            sizes.append(n["size"])
        return (max(w for w, _ in sizes),
                sum(h + T.TITLE_HEIGHT for _, h in sizes) + NODE_GAP * (len(sizes) - 1))

    x = y = row_h = 0
    for title, columns in blocks:
        sizes = [column_size(col) for col in columns]
        inner_w = sum(w for w, _ in sizes) + NODE_GAP * (len(sizes) - 1)
        inner_h = max(h for _, h in sizes)
        pad, header = (GROUP_PAD, GROUP_HEADER + GROUP_PAD) if title else (0, 0)
        block_w, block_h = inner_w + 2 * pad, inner_h + header + pad
        if block_w > max_w or block_h > max_h:
            raise ValueError(f"block {title!r} is {block_w} x {block_h}: more than the {max_w:.0f} x {max_h:.0f} "
                             f"a 1920x1080 window shows at zoom {VIEW_MIN_SCALE}; split its columns")
        if x and x + block_w > max_w:
            x, y, row_h = 0, y + row_h + BLOCK_GAP, 0
        cx = x + pad
        for col, (col_w, _) in zip(columns, sizes):
            cy = y + header
            for nid in col:
                by_id[nid]["pos"] = [cx, cy + T.TITLE_HEIGHT]
                cy += T.TITLE_HEIGHT + by_id[nid]["size"][1] + NODE_GAP
            cx += col_w + NODE_GAP
        if title:
            g.group(title, [nid for col in columns for nid in col], pad=GROUP_PAD)
        x += block_w + BLOCK_GAP
        row_h = max(row_h, block_h)


# --- graph fragments the shipped workflows share ---------------------------------------------
# Sources are (node id, output slot) pairs. The fragments create their nodes and links; the
# caller places them (layout columns, groups) and writes the notes around them.

SDXL_SAMPLER = {"seed": 0, "steps": 25, "cfg": 7.0, "sampler_name": "dpmpp_2m_sde", "scheduler": "karras",
                "denoise": 1.0}


def prompt_and_sample(g, template, model, clip, vae, size=1024, sampler=SDXL_SAMPLER, guidance=None):
    """Prompt Template -> CLIP Text Encode (+/-) -> KSampler (seed from the template) -> VAE Decode.

    guidance: a Flux guidance value; a FluxGuidance node then sits on the positive conditioning.
    Returns a dict of node ids: pos_enc, neg_enc, latent, sampler, vae_decode, guidance (None
    without guidance).
    """
    ids = dict(pos_enc=g.node("CLIPTextEncode", None, {"text": ""}, title="CLIP Text Encode (prompt)",
                              size=[360, 100]),
               neg_enc=g.node("CLIPTextEncode", None, {"text": ""}, title="CLIP Text Encode (negative)",
                              size=[360, 100]),
               latent=g.node("EmptyLatentImage", None, {"width": size, "height": size, "batch_size": 1},
                             size=[360, 110]),
               sampler=g.node("KSampler", None, sampler, controls={"seed": "fixed"}, size=[360, 270]),
               vae_decode=g.node("VAEDecode", None, size=[360, 50]),
               guidance=None)
    positive = (ids["pos_enc"], 0)
    if guidance is not None:
        ids["guidance"] = g.node("FluxGuidance", None, {"guidance": guidance}, size=[360, 60])
        g.link(*positive, ids["guidance"], "conditioning")
        positive = (ids["guidance"], 0)
    for name, text_slot in (("pos_enc", 0), ("neg_enc", 1)):
        g.link(*clip, ids[name], "clip")
        g.link(template, text_slot, ids[name], "text")
    links = {"model": model, "seed": (template, 3), "positive": positive, "negative": (ids["neg_enc"], 0),
             "latent_image": (ids["latent"], 0)}
    for name, source in links.items():
        g.link(*source, ids["sampler"], name)
    g.link(ids["sampler"], 0, ids["vae_decode"], "samples")
    g.link(*vae, ids["vae_decode"], "vae")
    return ids


def refine_and_pad(g, image, alpha):
    """Refine Alpha on (image, alpha), then Pad Foreground of the image with the refined alpha
    (as `ld-portrait refine` does: filled pinholes keep their decoded colour). Returns (refine, pad)."""
    refine = g.node("LDPRefineAlpha", None, {"strength": "standard"}, size=[400, 130])
    pad = g.node("LDPPadForeground", None, size=[400, 80])
    g.link(*alpha, refine, "alpha")
    g.link(*image, refine, "image")
    g.link(*image, pad, "image")
    g.link(refine, 0, pad, "alpha")
    return refine, pad


def quality_gate(g, alpha, raw_alpha=None, refine=None):
    """Matte Quality Gate (standard strictness) on alpha; the raw alpha and the refine node's
    changed and uncertain pixels when given (the uncertain ones enable the gate's
    'uncertain_matte' check)."""
    gate = g.node("LDPQualityGateSimple", None, {"strictness": "standard"}, size=[400, 150])
    g.link(*alpha, gate, "alpha")
    if raw_alpha is not None:
        g.link(*raw_alpha, gate, "raw_alpha")
    if refine is not None:
        g.link(refine, 1, gate, "changed")
        g.link(refine, 4, gate, "uncertain")
    return gate


def save_dataset(g, dataset, models, sources, gate, template=None, refine=None):
    """Save Matting Dataset into ``dataset`` with the ``models`` text.

    sources: input name -> (node id, slot) for foreground, alpha, sample_index (and raw_alpha);
    the gate gives keep and verdict, the template prompt, negative, attributes and seed, the
    refine node error_map and stats.
    """
    save = g.node("LDPSaveDataset", None, {"dataset_name": dataset, "models": models},
                  size=[440, 700], api_widgets={"models"})
    inputs = dict(sources, keep=(gate, 0), verdict=(gate, 3))
    if refine is not None:
        inputs.update(error_map=(refine, 2), stats=(refine, 3))
    if template is not None:
        inputs.update(prompt=(template, 0), negative=(template, 1), attributes=(template, 2), seed=(template, 3))
    for name, source in inputs.items():
        g.link(*source, save, name)
    return save


def preview(g, source, title, size=(420, 420)):
    """A Preview Image of ``source`` (node id, slot) with ``title``."""
    node = g.node("PreviewImage", None, title=title, size=list(size))
    g.link(*source, node, "images")
    return node


def transparent_decode(g, sampled, decoder):
    """Transparent Decode (8 passes) of a prompt_and_sample result with the decoder loader's
    decoder."""
    decode = g.node("LDPTransparentDecode", None, {"passes": "8", "sub_batch": 8}, size=[380, 150])
    g.link(sampled["sampler"], 0, decode, "samples")
    g.link(sampled["vae_decode"], 0, decode, "images")
    g.link(decoder, 0, decode, "decoder")
    return decode
