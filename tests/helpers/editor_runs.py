"""The shipped refine-a-folder graph queued in a real host as the editor queues it (with the
editor graph in ``extra_pnginfo``), and the fg PNG it writes: what the metadata host tests and
the browser test share."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
API_GRAPH = REPO / "workflows" / "api" / "ld_portrait_refine_folder.json"
UI_GRAPH = REPO / "workflows" / "LD-Portrait 5. Refine a folder of RGBA portraits.json"
SAVE_NODE = "11"


def refine_folder_graph(host, layerdiffuse_dir: Path, dataset_name: str) -> dict:
    """The shipped API graph, its input folder filled in ``host`` with one real Layer Diffusion
    portrait, saving into ``dataset_name`` with rejected samples kept (images whatever the gate
    says)."""
    graph = json.loads(API_GRAPH.read_text(encoding="utf-8"))
    target = host.input_dir / graph["3"]["inputs"]["path"]
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(layerdiffuse_dir / "i2i_0_transparent.png", target / "i2i_0_transparent.png")
    graph[SAVE_NODE]["inputs"]["dataset_name"] = dataset_name
    graph[SAVE_NODE]["inputs"]["keep_rejected"] = True
    return graph


def run_as_the_editor(host, graph: dict, workflow: dict, client_id: str) -> None:
    """Queue ``graph`` with ``workflow`` in ``extra_pnginfo`` and wait until it ran without error."""
    status, response = host.request("POST", "/prompt", {
        "prompt": graph, "client_id": client_id,
        "extra_data": {"extra_pnginfo": {"workflow": workflow}}})
    assert status == 200 and not response.get("node_errors"), response
    entry = host.wait(response["prompt_id"])
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]


def first_fg(root: Path) -> Path:
    """The first fg PNG of dataset ``root``, accepted or rejected."""
    found = sorted(root.glob("fg/*.png")) + sorted(root.glob("rejected/fg/*.png"))
    assert found, f"no fg PNG under {root}"
    return found[0]
