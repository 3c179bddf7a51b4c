"""Graph model shared by build_workflows.py: one description -> UI and API workflow JSON.

The node specs and the checks come from tests/workflows/test_workflows.py, so the generator and the test
can never disagree about what a valid workflow is.
"""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ldp_test_workflows", REPO / "tests" / "workflows" / "test_workflows.py")
T = importlib.util.module_from_spec(spec); sys.modules[spec.name] = T; spec.loader.exec_module(T)
from comfyui_ld_portrait.nodes import layerdiffusion_nodes as LDN

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

NOTE_COLOR, NOTE_BG = "#432", "#653"

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

    def group(self, title, members, color="#3f789e", pad=20):
        self.groups.append((title, members, color, pad))

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
                             properties={}, widgets_values=[n["text"]], color=NOTE_COLOR, bgcolor=NOTE_BG)
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
        for gi, (title, members, color, pad) in enumerate(self.groups, 1):
            x0 = min(by_id[m]["pos"][0] for m in members) - pad
            y0 = min(by_id[m]["pos"][1] for m in members) - T.TITLE_HEIGHT - pad - 36
            x1 = max(by_id[m]["pos"][0] + sizes[m][0] for m in members) + pad
            y1 = max(by_id[m]["pos"][1] + sizes[m][1] for m in members) + pad
            groups.append({"id": gi, "title": title, "bounding": [x0, y0, x1 - x0, y1 - y0],
                           "color": color, "font_size": 24, "flags": {}})
        return {"last_node_id": max(by_id), "last_link_id": len(self.links), "nodes": out_nodes,
                "links": link_rows, "groups": groups, "config": {},
                "extra": {"ds": {"scale": 0.6, "offset": [80, 120]}}, "version": 0.4}

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


def layout(g, columns, x0=0, y0=0, gap_x=90, gap_y=70):
    """columns: list of lists of node ids; stacks each column top-down, columns left to right."""
    by_id = g._by_id()
    x = x0
    for col in columns:
        y = y0
        width = 0
        for nid in col:
            n = by_id[nid]
            spec = spec_of(n["type"])
            size = n["size"] if n.get("size") else g.size_of(n, spec)
            n["size"] = size
            n["pos"] = [x, y]
            y += size[1] + gap_y
            width = max(width, size[0])
        x += width + gap_x
