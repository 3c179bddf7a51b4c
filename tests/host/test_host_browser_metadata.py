"""In a real host and its real editor: the editor graph that Save Matting Dataset wrote into an fg
PNG's ``workflow`` chunk opens in ComfyUI's editor (``app.loadGraphData`` in headless Chromium) as
the same nodes: the same ids and types, each type one the editor has registered (so none is a
missing-node placeholder).

Beside ``COMFYUI_DIR`` this needs ``COMFYUI_BROWSER`` (a Chromium executable) and the
``playwright`` package in ``COMFYUI_PYTHON``: the browser is driven by a small script run with that
Python, as the host is, so the project's own environment needs no Playwright (and no Playwright
browser download: the given Chromium is used, as tools/workflows_src/screenshots.py does).
Otherwise the test is skipped with that reason. ``COMFYUI_FRONT_END_ROOT``, when set, starts a
host of its own for this test with ``--front-end-root`` on it (ComfyUI 0.8.0 wants frontend
1.35: ``<comfyui_frontend_package 1.35>/static``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from comfyui_ld_portrait.dataset.pngtext import read_text_chunks
from helpers.editor_runs import UI_GRAPH, first_fg, refine_folder_graph, run_as_the_editor

# Generous bounds for a slow shared machine: they only stop a hung browser, they measure nothing.
BROWSER_STEP_TIMEOUT_MS = 180_000
BROWSER_RUN_TIMEOUT_S = 600

# Run with COMFYUI_PYTHON: reads {"url", "browser", "workflow", "query", "step_timeout_ms"} as JSON
# on stdin, opens the editor, loads the workflow as a dropped PNG's would be, and prints what the
# JavaScript ``query`` (an async arrow function) returns, with the page errors before and after.
BROWSER_SCRIPT = r'''
import json, sys
from playwright.sync_api import sync_playwright

request = json.load(sys.stdin)
step = request["step_timeout_ms"]
page_errors = []
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=request["browser"], headless=True,
                                         args=["--no-sandbox"])
    try:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(step)
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(request["url"] + "/")
        page.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=step)
        # the editor's own start-up graph (default or restored) must be in before ours goes in
        page.wait_for_load_state("networkidle", timeout=step)
        for _ in range(3):  # a first-run dialog, if any
            page.keyboard.press("Escape")
        errors_before_load = len(page_errors)
        page.evaluate("workflow => app.loadGraphData(workflow)", request["workflow"])
        page.wait_for_load_state("networkidle", timeout=step)
        result = page.evaluate(request["query"])
    finally:
        browser.close()
result["startup_errors"] = page_errors[:errors_before_load]
result["load_errors"] = page_errors[errors_before_load:]
print(json.dumps(result))
'''

#: What this test reads from the editor once the workflow is in.
GRAPH_QUERY = """async () => ({
    live: app.graph._nodes.map(node => [node.id, node.type]),
    serialized: app.graph.serialize().nodes.map(node => [node.id, node.type]),
    registered: Object.keys(LiteGraph.registered_node_types),
    frontend: window.__COMFYUI_FRONTEND_VERSION__ || null,
})"""


@pytest.fixture(scope="session")
def editor_browser() -> dict:
    """The Chromium and the Python (with playwright) that drive the editor; skip without them."""
    browser = os.environ.get("COMFYUI_BROWSER")
    if not browser:
        pytest.skip("the editor test needs a browser: set COMFYUI_BROWSER=/path/to/chromium "
                    "(and install playwright in COMFYUI_PYTHON)")
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        pytest.skip(f"COMFYUI_BROWSER={browser} is not an executable file; point it at a Chromium")
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import playwright.sync_api"], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no message)"])[-1]
        pytest.skip(f"the editor test drives Chromium with playwright, which {python} cannot "
                    f"import ({last}): pip install playwright into COMFYUI_PYTHON")
    return {"browser": browser, "python": python}


@pytest.fixture
def editor_host(editor_browser, comfy_host, host_with_flags):
    """The session's host, or with COMFYUI_FRONT_END_ROOT a host of its own serving that
    frontend (started with --front-end-root)."""
    front_end_root = os.environ.get("COMFYUI_FRONT_END_ROOT")
    if not front_end_root:
        yield comfy_host
        return
    if not (Path(front_end_root) / "index.html").is_file():
        raise FileNotFoundError(f"COMFYUI_FRONT_END_ROOT={front_end_root} has no index.html; point it "
                                "at a frontend's static folder (<comfyui_frontend_package>/static)")
    yield host_with_flags("--front-end-root", front_end_root)


def open_in_editor(editor_browser: dict, url: str, workflow: dict, query: str = GRAPH_QUERY) -> dict:
    """Load ``workflow`` in the host's editor at ``url`` (headless Chromium) and return what the
    JavaScript ``query`` gives, plus ``startup_errors`` and ``load_errors`` (page errors)."""
    request = {"url": url, "browser": editor_browser["browser"], "workflow": workflow, "query": query,
               "step_timeout_ms": BROWSER_STEP_TIMEOUT_MS}
    # its own process group, so a hung run takes its Playwright driver and Chromium down with it
    script = subprocess.Popen([editor_browser["python"], "-c", BROWSER_SCRIPT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        stdout, stderr = script.communicate(json.dumps(request), timeout=BROWSER_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGKILL)
        stdout, stderr = script.communicate()
        raise AssertionError(f"the browser script did not finish within {BROWSER_RUN_TIMEOUT_S} s:\n"
                             + stderr[-4000:]) from None
    assert script.returncode == 0, f"the browser script failed ({script.returncode}):\n{stderr[-4000:]}"
    return json.loads(stdout.strip().splitlines()[-1])


def test_workflow_chunk_opens_in_the_editor_as_the_same_nodes(
        editor_browser, editor_host, layerdiffuse_dir):
    name = f"browser_meta_{uuid.uuid4().hex[:8]}"
    shipped_workflow = json.loads(UI_GRAPH.read_text(encoding="utf-8"))
    run_as_the_editor(editor_host, refine_folder_graph(editor_host, layerdiffuse_dir, name), shipped_workflow,
                      "ldp-browser-metadata-test")
    fg = first_fg(editor_host.output_dir / name)
    chunk_workflow = json.loads(read_text_chunks(fg.read_bytes())["workflow"])
    expected = sorted([node["id"], node["type"]] for node in chunk_workflow["nodes"])
    assert chunk_workflow == shipped_workflow and expected

    opened = open_in_editor(editor_browser, editor_host.url, chunk_workflow)
    context = (f"host {editor_host.version}, frontend {opened['frontend']}, "
               f"page errors at start-up {opened['startup_errors']}")
    assert sorted(opened["live"]) == expected, context
    assert sorted(opened["serialized"]) == expected, context
    assert opened["load_errors"] == [], context
    unregistered = sorted({node_type for _, node_type in expected} - set(opened["registered"]))
    assert not unregistered, f"the editor does not know {unregistered} ({context})"
