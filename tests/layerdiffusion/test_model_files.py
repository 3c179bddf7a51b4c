"""The one table of published model files: torch-free, consistent with the networks, and what
the shipped workflows, the nodes and the downloader use."""
import json
import subprocess
import sys
from pathlib import Path

from comfyui_ld_portrait.layerdiffusion import decoder, encoder, model_files
from comfyui_ld_portrait.nodes import layerdiffusion as ldn

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def test_reading_the_table_does_not_load_torch():
    code = ("import sys; from comfyui_ld_portrait.layerdiffusion import model_files; "
            "from comfyui_ld_portrait.nodes import layerdiffusion; "
            "print(sorted(m for m in ('torch', 'safetensors') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_table_matches_the_networks():
    assert model_files.SUPPORTED_LATENT_CHANNELS == decoder.SUPPORTED_LATENT_CHANNELS
    for spec in model_files.files_of_kind("decoder"):
        assert len(decoder.decoder_state_dict_shapes(spec.latent_channels)) == model_files.DECODER_TENSOR_COUNT
    for spec in model_files.files_of_kind("encoder"):
        assert len(encoder.encoder_state_dict_shapes(spec.latent_channels)) == model_files.ENCODER_TENSOR_COUNT
    assert {spec.latent_channels for spec in model_files.files_of_kind("decoder", family="flux")} == {16}


def test_addresses_and_licences():
    for spec in model_files.MODEL_FILES.values():
        url = spec.url()
        if spec.repository is None:
            assert url is None and spec.key in sum(model_files.CONVERTED_FROM.values(), ())
        else:
            assert url == f"https://huggingface.co/{spec.repository}/resolve/{spec.revision}/{spec.file_name}"
            # A recorded SHA-256 belongs to one revision: the file is fetched from it, not "main".
            if spec.sha256 is not None:
                assert spec.revision == model_files.LAYER_DIFFUSION_REVISION
            elif spec.key not in ("sd15_attn", "sd15_decoder"):
                assert spec.revision == "main"
    # The SD1.5 links are pinned to the SDXL files' revision of the same repository.
    for key in ("sd15_attn", "sd15_decoder"):
        assert f"/resolve/{model_files.LAYER_DIFFUSION_REVISION}/" in model_files.MODEL_FILES[key].url()
        if spec.family == "flux":
            assert "Non-Commercial" in spec.licence
    assert model_files.MODEL_FILES["flux_lora"].folder == "loras"
    for family in model_files.FAMILIES:
        assert all(spec.repository for spec in model_files.family_files(family))


def test_nodes_offer_the_table_names():
    assert set(ldn.KNOWN_DECODER_FILES) == {s.file_name for s in model_files.files_of_kind("decoder")}
    assert set(ldn.KNOWN_PATCH_FILES) == {s.file_name for s in model_files.files_of_kind("patch", "attn_sharing")}


def test_shipped_workflows_use_the_table():
    base = {name: (folder, url) for name, folder, url, _ in model_files.BASE_MODELS.values()}
    seen = set()
    for path in sorted(WORKFLOWS.glob("*.json")):
        for node in json.loads(path.read_text(encoding="utf-8"))["nodes"]:
            for model in node.get("properties", {}).get("models", []):
                spec = model_files.by_file_name(model["name"])
                if spec is not None:
                    assert (model["directory"], model["url"]) == (spec.folder, spec.url()), path.name
                    seen.add(spec.key)
                elif model["name"] in base:
                    assert (model["directory"], model["url"]) == base[model["name"]], path.name
    assert {"attn", "decoder", "sd15_attn", "sd15_decoder", "flux_lora"} <= seen
