"""Screenshots of every shipped UI workflow as it opens in ComfyUI's editor, for docs/screenshots/.

Not a test and not run by one: it needs a running ComfyUI with this pack in custom_nodes, Chromium and the
``playwright`` package (its own browser download is not needed: the system Chromium is used).

    python main.py --cpu --listen 127.0.0.1 --port 8188                 # frontend 1.27 (ComfyUI 0.3.64)
    python main.py --cpu --listen 127.0.0.1 --port 8189 \\
        --front-end-root <comfyui_frontend_package 1.35>/static         # frontend 1.35 (ComfyUI 0.8.0)
    python tools/workflows_src/screenshots.py 8188 1.27
    python tools/workflows_src/screenshots.py 8189 1.35

For each template the server lists for this pack it does what the template browser does with a chosen
template (fetch /api/workflow_templates/<pack>/<name>.json, app.loadGraphData), closes the missing-models
dialog (the host has no model files), prints the view the editor restored and writes
docs/screenshots/frontend_<version>_<n>_<short name>.jpg (1920x1080, JPEG quality 75), then one picture
of the template browser open on the pack.
"""
import asyncio
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PACK = "ComfyUI-LD-Portrait"          # the folder name under custom_nodes: the browser's module name
CHROMIUM = "/usr/bin/chromium"
WINDOW = {"width": 1920, "height": 1080}
JPEG_QUALITY = 75


def _save(png: bytes, path: Path) -> None:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise RuntimeError(f"could not encode {path.name}")
    path.write_bytes(jpg.tobytes())
    print(f"{path.name}: {len(jpg) // 1024} KB")


def _short_name(api_workflow: str) -> str:
    """'api/ld_portrait_20k_generate.json' -> '20k_generate'."""
    return Path(api_workflow).stem.removeprefix("ld_portrait_")


async def main(port: str, version: str) -> None:
    from playwright.async_api import async_playwright

    base = f"http://127.0.0.1:{port}"
    names = json.load(urllib.request.urlopen(base + "/workflow_templates")).get(PACK)
    if not names:
        raise SystemExit(f"the server at {base} lists no templates for {PACK}: is the pack in custom_nodes?")
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport=WINDOW)
        await page.goto(base + "/")
        await page.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=120_000)
        await page.wait_for_timeout(4000)
        for _ in range(3):  # a first-run dialog, if any
            await page.keyboard.press("Escape")
            await page.wait_for_timeout(300)
        for name in sorted(names):
            url = f"{base}/api/workflow_templates/{urllib.parse.quote(PACK)}/{urllib.parse.quote(name)}.json"
            data = json.load(urllib.request.urlopen(url))
            await page.evaluate("([data, name]) => app.loadGraphData(data, true, true, name)", [data, name])
            await page.wait_for_timeout(2500)
            for _ in range(2):  # the missing-models dialog
                await page.keyboard.press("Escape")
                await page.wait_for_timeout(400)
            view = await page.evaluate("[app.canvas.ds.scale, ...app.canvas.ds.offset, app.canvas.low_quality]")
            print(f"{name}: scale {view[0]}, offset {view[1:3]}, low quality {view[3]}")
            number = name.split(".")[0].rsplit(" ", 1)[-1]
            short = _short_name(data["extra"]["ld_portrait"]["api_workflow"])
            _save(await page.screenshot(), OUT / f"frontend_{version}_{number}_{short}.jpg")
        await page.evaluate("app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        await page.wait_for_timeout(2500)
        pack = page.get_by_text(PACK).first
        if await pack.count():
            await pack.click()
            await page.wait_for_timeout(2000)
        _save(await page.screenshot(), OUT / f"frontend_{version}_template_browser.jpg")
        await browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: screenshots.py PORT FRONTEND_VERSION   (for example: screenshots.py 8188 1.27)")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
