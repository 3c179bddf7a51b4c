"""Host tests: run the pack inside a real ComfyUI server on CPU.

They run only when ``COMFYUI_DIR`` points at a ComfyUI checkout (the folder with
``main.py``); ``COMFYUI_PYTHON`` is the Python that runs it (default: the one running
pytest). Without ``COMFYUI_DIR`` every test in this folder is skipped at collection, so
the normal suite pays nothing for them.

One server per test session: a temporary base folder holds ``custom_nodes/`` (the
repository linked in as ``ComfyUI-LD-Portrait``), ``input/``, ``output/``, ``temp/``,
``user/`` and ``models/`` (with ``models/layer_model/``), and the host is started with
``--base-directory`` on that folder, so nothing is written into the checkout (its SQLite
database goes there too, where the host has ``--database-url``). The host listens on a
free 127.0.0.1 port only; its whole log is kept for the import checks.

Beside the pack, ``custom_nodes/`` gets one test-only module, ``ldp_host_test_scaffold.py``
(the source is ``SCAFFOLD_NODES_SOURCE`` below; it is never part of the pack): a node that
wraps a tiny torch module with SDXL-style weight names in the host's own ``ModelPatcher`` and
one that loads a MODEL the way a sampler does and saves its weights, so the Layer Diffusion
patch can be checked on the host's real model management without an SDXL checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST_DIR = Path(__file__).resolve().parent
REPO_ROOT = HOST_DIR.parents[1]
PACK_FOLDER = "ComfyUI-LD-Portrait"
STARTUP_TIMEOUT_S = 120.0
PROMPT_TIMEOUT_S = 120.0
SCAFFOLD_FILE = "ldp_host_test_scaffold.py"
SCAFFOLD_NODES_SOURCE = '''"""Test-only ComfyUI nodes for the LD-Portrait host tests (not part of the pack).

Written into the temporary custom_nodes folder by tests/host/conftest.py. Node names do not
start with LDP, so the pack's own node listing is unaffected.
"""
import json
import os

import comfy.model_management
import comfy.model_patcher
import folder_paths
import safetensors.torch
import torch
from torch import nn

# Leaf modules of the tiny model: dotted name under the model -> module factory.
TINY_LAYOUT = {
    "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q": lambda: nn.Linear(16, 16, bias=False),
    "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_k": lambda: nn.Linear(16, 16, bias=False),
    "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k": lambda: nn.Linear(24, 16, bias=False),
    "diffusion_model.input_blocks.0.0": lambda: nn.Conv2d(4, 8, 3, padding=1),
    "diffusion_model.output_blocks.2.1.norm": lambda: nn.GroupNorm(4, 8),
}


class SDXL:
    """Stands in for the host's model config; the patch node names the class in messages."""


def _tiny_model(seed):
    torch.manual_seed(seed)
    root = nn.Module()
    for dotted, factory in TINY_LAYOUT.items():
        parent = root
        *path, last = dotted.split(".")
        for part in path:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        parent.add_module(last, factory())
    with torch.no_grad():  # GroupNorm starts at exactly 1/0; make every weight distinct
        for parameter in root.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.1)
    root.model_config = SDXL()
    return root


class HostTestTinySDXLModel:
    CATEGORY = "_ldp_host_tests"
    FUNCTION = "build"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1})}}

    def build(self, seed):
        return (comfy.model_patcher.ModelPatcher(
            _tiny_model(seed), load_device=comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device()),)


class HostTestSaveLoadedWeights:
    """Load the MODEL with the host's model management (as a sampler does: patches are applied
    then) and save every weight, float32, to output/<filename> as safetensors."""
    CATEGORY = "_ldp_host_tests"
    FUNCTION = "save"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "filename": ("STRING", {"default": "weights.safetensors"})}}

    def save(self, model, filename):
        comfy.model_management.load_models_gpu([model])
        state = {key: value.detach().to("cpu", torch.float32).contiguous().clone()
                 for key, value in model.model.state_dict().items()}
        safetensors.torch.save_file(state, os.path.join(folder_paths.get_output_directory(), filename))
        # Each host patch entry is (strength, patch, strength_model, offset, function); a patch
        # is a ("diff", (tensor,)) style tuple or a weight adapter object on newer hosts.
        patch_types = {key: [entry[1][0] if isinstance(entry[1], tuple) else type(entry[1]).__name__
                             for entry in entries]
                       for key, entries in model.patches.items()}
        return {"ui": {"ldp_weights": [filename],
                       "ldp_patch_types": [json.dumps(patch_types, sort_keys=True)]}}


NODE_CLASS_MAPPINGS = {
    "HostTestTinySDXLModel": HostTestTinySDXLModel,
    "HostTestSaveLoadedWeights": HostTestSaveLoadedWeights,
}
'''
SKIP_REASON = (
    "host tests need a ComfyUI checkout: set COMFYUI_DIR=/path/to/ComfyUI (the folder with "
    "main.py) and COMFYUI_PYTHON=/path/to/its/python (default: this Python) to run them")


def pytest_collection_modifyitems(config, items):
    """Skip every test under tests/host when COMFYUI_DIR is not set (no server is started)."""
    if os.environ.get("COMFYUI_DIR"):
        return
    marker = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HOST_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(marker)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _host_flags(comfy_dir: Path) -> set[str]:
    """Command-line flags this host version knows, read from its cli_args.py."""
    text = (comfy_dir / "comfy" / "cli_args.py").read_text(encoding="utf-8", errors="replace")
    return {flag for flag in ("--database-url", "--user-directory", "--disable-auto-launch")
            if f'"{flag}"' in text}


@dataclass
class ComfyHost:
    """A running ComfyUI server and its temporary folders."""

    comfy_dir: Path
    python: str
    base: Path
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    version: str = "unknown"
    startup_log_size: int = 0
    _client_id: str = field(default="ldp-host-tests")

    # folders -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def models_dir(self) -> Path:
        return self.base / "models"

    @property
    def pack_dir(self) -> Path:
        return self.base / "custom_nodes" / PACK_FOLDER

    # log -------------------------------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")

    def startup_log(self) -> str:
        """The log up to the moment the server first answered (custom node imports included)."""
        with open(self.log_path, "rb") as handle:
            return handle.read(self.startup_log_size).decode("utf-8", errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    # HTTP ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, timeout: float = 30.0):
        """(HTTP status, decoded JSON or None) for one request; HTTP errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {} if body is None else {"Content-Type": "application/json"}
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", errors="replace")

    def get_json(self, path: str, timeout: float = 60.0):
        status, payload = self.request("GET", path, timeout=timeout)
        assert status == 200, f"GET {path} answered {status}: {payload!r}"
        return payload

    def object_info(self, node_id: str | None = None) -> dict:
        if node_id is None:
            return self.get_json("/object_info")
        return self.get_json(f"/object_info/{node_id}")[node_id]

    def submit(self, graph: dict):
        """POST an API-format graph to /prompt: (status, response JSON)."""
        return self.request("POST", "/prompt", {"prompt": graph, "client_id": self._client_id})

    def wait(self, prompt_id: str, timeout: float = PROMPT_TIMEOUT_S) -> dict:
        """The /history entry of a queued prompt once it finished (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            self.check_alive()
            time.sleep(0.1)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout:.0f} s; host log tail:\n"
                             + self.log_tail())

    def run(self, graph: dict, timeout: float = PROMPT_TIMEOUT_S) -> dict:
        """Queue ``graph``, wait for it, and return its history entry; fail on any error."""
        status, response = self.submit(graph)
        assert status == 200, f"/prompt answered {status}: {json.dumps(response, indent=1)[:3000]}"
        assert not response.get("node_errors"), response
        entry = self.wait(response["prompt_id"], timeout)
        assert entry["status"]["status_str"] == "success", (
            "graph failed in the host:\n" + json.dumps(entry["status"], indent=1)[:4000])
        return entry

    def output_files(self, entry: dict, node_id: str) -> list[Path]:
        """Files an output node (SaveImage and the like) reported in its history entry."""
        images = entry["outputs"][node_id]["images"]
        roots = {"output": self.output_dir, "temp": self.base / "temp", "input": self.input_dir}
        return [roots[image.get("type", "output")] / image.get("subfolder", "") / image["filename"]
                for image in images]

    @staticmethod
    def cached_nodes(entry: dict) -> set[str]:
        """Ids of the nodes the host served from its cache in a history entry."""
        for kind, data in entry["status"].get("messages", []):
            if kind == "execution_cached":
                return {str(node) for node in data.get("nodes", [])}
        return set()

    def problems_logged(self, offset: int) -> list[str]:
        """Warning and traceback lines the host logged since ``offset`` (see ``log_size``)."""
        return [line for line in self.log_since(offset).splitlines()
                if line.lstrip().startswith(("WARNING", "Traceback", "!!! Exception"))]

    # process ---------------------------------------------------------------------------------
    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the ComfyUI host exited with code {self.process.returncode}; "
                                 f"log tail:\n{self.log_tail()}")

    def start(self, append_log: bool = False) -> None:
        flags = _host_flags(self.comfy_dir)
        command = [
            self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base),
            "--input-directory", str(self.input_dir), "--output-directory", str(self.output_dir),
            "--temp-directory", str(self.base / "temp"),
        ]
        if "--disable-auto-launch" in flags:
            command.append("--disable-auto-launch")
        if "--user-directory" in flags:
            command += ["--user-directory", str(self.base / "user")]
        if "--database-url" in flags:
            # The default database lives in the checkout's user/ folder; keep it in the temp base.
            command += ["--database-url", f"sqlite:///{self.base / 'comfyui.db'}"]
        env = dict(os.environ)
        env.pop("COMFYUI_DIR", None)
        # Show every warning once, so warnings raised from our modules reach the log.
        env.update(PYTHONUNBUFFERED="1", PYTHONWARNINGS="default")
        with open(self.log_path, "ab" if append_log else "wb") as log:
            self.process = subprocess.Popen(command, cwd=self.comfy_dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = self.request("GET", "/object_info", timeout=10)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                status = None
            if status == 200:
                stats = self.request("GET", "/system_stats")[1] or {}
                self.version = str(stats.get("system", {}).get("comfyui_version", "unknown"))
                self.startup_log_size = self.log_size()
                return
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"ComfyUI did not serve /object_info within {STARTUP_TIMEOUT_S:.0f} s; "
                             f"log tail:\n{self.log_tail()}")

    def restart(self) -> None:
        """Stop the server and start it again on the same port and folders (its caches and
        queue are lost, as when a user restarts ComfyUI); the log continues in the same file."""
        self.stop()
        self.start(append_log=True)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory) -> ComfyHost:
    """A ComfyUI server with the pack installed, running for the whole test session."""
    comfy_dir = Path(os.environ["COMFYUI_DIR"]).expanduser().resolve()
    if not (comfy_dir / "main.py").is_file():
        raise FileNotFoundError(f"COMFYUI_DIR={comfy_dir} has no main.py; point it at a ComfyUI checkout.")
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    base = tmp_path_factory.mktemp("comfy_base")
    for name in ("custom_nodes", "input", "output", "temp", "user", "models/layer_model", "models/checkpoints"):
        (base / name).mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO_ROOT, target_is_directory=True)
    (base / "custom_nodes" / SCAFFOLD_FILE).write_text(SCAFFOLD_NODES_SOURCE, encoding="utf-8")
    host = ComfyHost(comfy_dir=comfy_dir, python=python, base=base, port=_free_port(),
                     log_path=base / "comfyui.log")
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def host_with_flags(comfy_host, tmp_path):
    """Start a second server of the session's host with extra command-line flags (a shell
    wrapper around its Python appends them), in folders of its own with the pack linked in:
    ``host_with_flags("--disable-metadata")``. Stopped when the test ends."""
    started = []

    def start(*flags: str) -> ComfyHost:
        wrapper = tmp_path / "python_with_flags"
        quoted = " ".join(f'"{flag}"' for flag in flags)
        wrapper.write_text(f'#!/bin/sh\nexec "{comfy_host.python}" "$@" {quoted}\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
        base = tmp_path / "base"
        for folder in ("custom_nodes", "input", "output", "temp", "user"):
            (base / folder).mkdir(parents=True)
        (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO_ROOT, target_is_directory=True)
        host = ComfyHost(comfy_dir=comfy_host.comfy_dir, python=str(wrapper), base=base,
                         port=_free_port(), log_path=base / "comfyui.log")
        started.append(host)
        host.start()
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture(scope="session")
def host_images(comfy_host, layerdiffuse_dir) -> dict:
    """Real Layer Diffusion RGBA images copied into the host's input folder.

    ``single``: ``ldp_test/i2i_0_transparent.png`` (1024x1024); ``batch_folder``:
    ``ldp_batch/`` with three 1024x1024 RGBA portraits/objects sorted by name.
    """
    single = comfy_host.input_dir / "ldp_test" / "i2i_0_transparent.png"
    single.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(layerdiffuse_dir / "i2i_0_transparent.png", single)
    batch = comfy_host.input_dir / "ldp_batch"
    batch.mkdir(exist_ok=True)
    names = ("a_i2i_0_transparent.png", "b_cat.png", "c_causal_cut.png")
    for name, source in zip(names, ("i2i_0_transparent.png", "cat.png", "causal_cut.png")):
        shutil.copyfile(layerdiffuse_dir / source, batch / name)
    return {"single": single, "single_rel": "ldp_test/i2i_0_transparent.png",
            "batch_folder": batch, "batch_rel": "ldp_batch", "batch_files": [batch / n for n in names]}
