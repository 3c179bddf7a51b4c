"""Flux and SD1.5 facts checked on the host's own code (no server: the host's Python imports its
``comfy`` package; ``families_probe.py`` does the work and prints JSON).

- Flux latent: ``latent_formats.Flux.process_out`` is ``x / 0.3611 + 0.1159`` (the table's
  constants, the expression the Flux reference decodes) and the sampler returns
  ``process_latent_out``: ComfyUI's LATENT samples are the raw VAE latent the decoder wants.
- Flux LoRA: a diffusers-layout LoRA (``transformer.<key>.lora_A/B.weight``, the layout of the
  published ``layerlora.safetensors``) over every linear weight of a tiny Flux model maps
  through ``comfy.lora.model_lora_keys_unet`` / ``load_lora`` (nothing left unmapped) and, once
  the host loads the model, each weight (qkv rows included) moved by exactly B @ A.
- SD1.5 attention: our patch node on a real ``ModelPatcher`` of the host's ``CrossAttention``
  modules: loaded, every wrapped attention equals the reference unit; unpatched, everything is
  as before.

Skipped without ``COMFYUI_DIR`` (tests/host/conftest.py); ``COMFYUI_PYTHON`` picks the host's
Python. Checked on ComfyUI 0.3.64 and 0.8.0.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parent / "families_probe.py"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def probe():
    comfy_dir = Path(os.environ["COMFYUI_DIR"]).expanduser().resolve()
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    done = subprocess.run([python, str(PROBE), str(REPO)], cwd=comfy_dir, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("LDP_RESULT ")]
    assert lines, f"the probe printed no result (exit {done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len("LDP_RESULT "):])


def _ok(result: dict) -> dict:
    assert "error" not in result, f"this host lacks what the check needs: {result['error']}"
    return result


def test_comfy_flux_samples_are_the_raw_latent_the_reference_decodes(probe):
    result = _ok(probe["flux_latent"])
    assert result["latent_channels"] == 16
    assert result["max_difference"] <= 1e-6
    assert result["sampler_returns_process_latent_out"]


def test_diffusers_flux_lora_keys_map_through_the_host_lora_code(probe):
    result = _ok(probe["flux_lora"])
    assert result["lora_modules"] >= 20  # double + single block attention, MLPs, embedders
    assert result["host_patches"] == result["lora_modules"] == result["added"]
    assert result["max_difference"] <= 1e-5
    assert result["changed_unpatched"] == []


def test_sd15_attention_patch_on_the_host_model_patcher(probe):
    result = _ok(probe["sd15_attention"])
    assert result["wrapped"] == 32
    assert result["max_difference"] <= 1e-4
    assert result["weights_restored"] and result["modules_restored"]
