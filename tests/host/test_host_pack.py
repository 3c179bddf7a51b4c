"""The host loads the pack cleanly and advertises every LDP node exactly as declared."""
from __future__ import annotations

import json
import re

import pytest

from comfyui_ld_portrait import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

PACK_MARKERS = ("ComfyUI-LD-Portrait", "comfyui_ld_portrait")


def _mentions_pack(line: str, repo_root: str) -> bool:
    return any(marker in line for marker in PACK_MARKERS) or repo_root in line


def test_pack_imports_without_errors_or_warnings(comfy_host):
    log = comfy_host.startup_log()
    repo_root = str(comfy_host.pack_dir.resolve())
    pack_path = str(comfy_host.pack_dir)
    # The host lists each custom node folder with its import time; failures are marked.
    timing = re.compile(r"^\s*\d+(\.\d+)? seconds( \(IMPORT FAILED\))?: (?P<path>.+?)\s*$")
    entries = [match for match in map(timing.match, log.splitlines())
               if match and match.group("path") == pack_path]
    assert entries, f"the host log has no import line for {pack_path}:\n{log[-4000:]}"
    assert all("IMPORT FAILED" not in entry.group(0) for entry in entries), entries[0].group(0)
    assert f"Cannot import {pack_path}" not in log

    # No traceback or warning that mentions our files while the host started.
    offending = [line for line in log.splitlines()
                 if _mentions_pack(line, repo_root) and not timing.match(line)]
    assert not offending, "host log lines about the pack besides its import time:\n" + "\n".join(offending)


def _json(value):
    """What the host's JSON encoding makes of a Python value (tuples become lists)."""
    return json.loads(json.dumps(value))


def _classic_combo(kind, options: dict):
    """A served input in the classic form: the host declares a V3 combo as type ``COMBO`` with
    ``options`` (and ``multiselect: false``) where the classic form has the list as its type;
    every other input is served as declared."""
    if kind != "COMBO":
        return kind, options
    assert options.get("multiselect") is False, options
    return options["options"], {key: value for key, value in options.items()
                                if key not in ("options", "multiselect")}


def _check_inputs(node_id: str, declared: dict, served: dict, order: dict | None, models_dir) -> None:
    for section in ("required", "optional"):
        want = _json(declared.get(section, {}))
        got = served.get(section, {})
        assert list(got) == list(want), f"{node_id} {section} inputs: host {list(got)}, declared {list(want)}"
        if order is not None:
            assert order.get(section, []) == list(want), f"{node_id} {section} input order differs"
        for name, spec in want.items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            served_kind, served_options = (_classic_combo(*got[name][:2]) if len(got[name]) > 1
                                           else (got[name][0], {}))
            if isinstance(kind, list) and served_kind != kind:
                # A COMBO filled from the host's model folders lists files only the host sees.
                files = {str(path.relative_to(models_dir / folder)).replace("\\", "/")
                         for folder in ("layer_model", "checkpoints") if (models_dir / folder).is_dir()
                         for path in (models_dir / folder).rglob("*") if path.is_file()}
                assert isinstance(served_kind, list) and set(served_kind) <= files, (
                    f"{node_id}.{name}: host lists {served_kind}, declared {kind}")
                # Its default follows the files present too: it must be one of them.
                if "default" in served_options or "default" in options:
                    assert served_options.get("default") in served_kind or served_options.get("default") == options.get("default"), (
                        f"{node_id}.{name}: host default {served_options.get('default')!r} not among {served_kind}")
                    served_options = {k: v for k, v in served_options.items() if k != "default"}
                    options = {k: v for k, v in options.items() if k != "default"}
            else:
                assert served_kind == kind, f"{node_id}.{name}: host type {served_kind!r}, declared {kind!r}"
            assert served_options == options, f"{node_id}.{name} options: host {served_options}, declared {options}"


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_object_info_matches_declared_node(comfy_host, node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    info = comfy_host.object_info(node_id)
    _check_inputs(node_id, cls.INPUT_TYPES(), info["input"], info.get("input_order"), comfy_host.models_dir)

    outputs = list(cls.RETURN_TYPES)
    assert info["output"] == _json(outputs)
    assert info["output_name"] == list(getattr(cls, "RETURN_NAMES", outputs))
    assert info["output_is_list"] == list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(outputs)))
    assert info["output_node"] is bool(getattr(cls, "OUTPUT_NODE", False))
    assert info["category"] == cls.CATEGORY and info["category"].startswith("LD-Portrait/")
    assert info["display_name"] == NODE_DISPLAY_NAME_MAPPINGS[node_id]
    assert info["description"] == cls.DESCRIPTION
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        assert info["output_tooltips"] == list(cls.OUTPUT_TOOLTIPS)


def test_nodes_are_served_as_v3_nodes(comfy_host):
    """Inside the host the pack declares its nodes with comfy_api's V3 schema: a V3 node reports
    deprecated / experimental for every node and its combos as COMBO (a classic node neither)."""
    info = comfy_host.object_info()
    for node_id in NODE_CLASS_MAPPINGS:
        deprecated = bool(getattr(NODE_CLASS_MAPPINGS[node_id], "DEPRECATED", False))
        assert info[node_id]["deprecated"] is deprecated, node_id
        assert info[node_id]["experimental"] is False, node_id
    assert info["LDPLoadRGBA"]["input"]["optional"]["out_of_range"][0] == "COMBO"


def test_object_info_lists_exactly_our_ldp_nodes(comfy_host):
    served = {name for name in comfy_host.object_info() if name.startswith("LDP")}
    assert served == set(NODE_CLASS_MAPPINGS), (
        f"missing in host: {sorted(set(NODE_CLASS_MAPPINGS) - served)}; "
        f"unexpected: {sorted(served - set(NODE_CLASS_MAPPINGS))}")


def test_pack_loads_again_after_a_host_restart(comfy_host):
    """A restarted host (same port, same folders) imports the pack again and serves its nodes."""
    first_port, offset = comfy_host.port, comfy_host.log_size()
    comfy_host.restart()
    assert comfy_host.port == first_port
    restart_log = comfy_host.log_since(offset)
    assert f"seconds: {comfy_host.pack_dir}" in restart_log, restart_log[-4000:]
    served = {name for name in comfy_host.object_info() if name.startswith("LDP")}
    assert served == set(NODE_CLASS_MAPPINGS)
