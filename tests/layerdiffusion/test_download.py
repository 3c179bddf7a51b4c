"""``ld-portrait models download`` against a local HTTP server (127.0.0.1 only, no internet).

The server serves small generated safetensors files under the Hugging Face URL layout, honours
``Range`` requests, and can drop a connection, ignore ranges, redirect with a checksum header
like Hugging Face, or serve broken bytes.
"""
import argparse
import errno
import hashlib
import http.server
import io
import json
import socket
import struct
import threading

import pytest
import safetensors.torch
import torch

from comfyui_ld_portrait.cli import models as cli_models
from comfyui_ld_portrait.layerdiffusion import download as md
from comfyui_ld_portrait.layerdiffusion import weights as ld_weights
from comfyui_ld_portrait.layerdiffusion.decoder import decoder_state_dict_shapes
from comfyui_ld_portrait.layerdiffusion.encoder import encoder_state_dict_shapes

PREFIX = "/LayerDiffusion/layerdiffusion-v1/resolve/main/"  # the test table's files use "main"
PATCH = "layer_xl_transparent_attn.safetensors"
ENCODER = "vae_transparent_encoder.safetensors"


# --- files and server --------------------------------------------------------------------------

def patch_bytes(seed=0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    key = "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"
    return safetensors.torch.save({
        f"{key}::lora::0": torch.randn(64, 8, generator=g).half(),
        f"{key}::lora::1": torch.randn(8, 64, generator=g).half(),
        "diffusion_model.out.2.bias::diff::0": torch.randn(4000, generator=g),
    })


def encoder_bytes(seed=0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    return safetensors.torch.save(
        {name: torch.randn(shape, generator=g).half() for name, shape in encoder_state_dict_shapes().items()})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A Range-capable file server; ``requests`` records (path, Range header) per request."""

    def __init__(self):
        self.files, self.requests, self.sent = {}, [], 0
        self.drop_after = {}  # name -> bytes of the body sent before the connection is cut (once)
        self.ignore_range = False
        self.linked_etag = {}  # name -> value of X-Linked-Etag on a redirect, as Hugging Face
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path.startswith(PREFIX) and self.path[len(PREFIX):] in server.linked_etag:
                    name = self.path[len(PREFIX):]
                    self.send_response(302)
                    self.send_header("Location", "/store/" + name)
                    self.send_header("X-Linked-Etag", f'"{server.linked_etag[name]}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                name = self.path.rsplit("/", 1)[-1]
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and not server.ignore_range:
                    start = int(wanted.removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.drop_after.pop(name, None)
                if cut is not None:
                    body = body[:cut]
                    self.close_connection = True
                self.wfile.write(body)
                server.sent += len(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    instance = Server()
    instance.files = {PATCH: patch_bytes(), ENCODER: encoder_bytes()}
    monkeypatch.setenv(md.ENDPOINT_ENV, instance.url)
    # Small files stand in for the published ones: the URL table points at them with their hashes.
    monkeypatch.setattr(md, "MODEL_FILES", {
        "attn": md.ModelFile("attn", PATCH, "patch", sha(instance.files[PATCH]), "test patch"),
        "encoder": md.ModelFile("encoder", ENCODER, "encoder", sha(instance.files[ENCODER]), "test encoder"),
    })
    yield instance
    instance.close()


@pytest.fixture()
def comfy(tmp_path):
    root = tmp_path / "ComfyUI"
    (root / "models" / "checkpoints").mkdir(parents=True)
    (root / "main.py").write_text("")
    return root


def downloader(**options):
    options = {"retry_wait": 0.0, "chunk_size": 4096, "timeout": 10.0, **options}
    return md.Downloader(**options)


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ld-portrait")
    cli_models.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.handler(args, out, err), out.getvalue(), err.getvalue()


# --- the published table -----------------------------------------------------------------------

def test_published_files_and_urls(monkeypatch):
    monkeypatch.delenv(md.ENDPOINT_ENV, raising=False)
    assert md.downloadable_keys() == ("attn", "conv", "decoder", "encoder", "sd15_attn",
                                      "sd15_decoder", "flux_lora", "flux_vae")
    names = {spec.key: spec.file_name for spec in md.MODEL_FILES.values()}
    assert (names["attn"], names["conv"]) == ld_weights.PATCH_FILE_NAMES
    assert names["decoder"] == ld_weights.DECODER_FILE_NAME
    assert names["encoder"] == ld_weights.ENCODER_FILE_NAME
    assert all(spec.sha256 is None or len(spec.sha256) == 64 for spec in md.MODEL_FILES.values())
    assert md.Downloader().url_for(md.MODEL_FILES["decoder"]) == (
        "https://huggingface.co/LayerDiffusion/layerdiffusion-v1/resolve/"
        "e337e9d7a0f2a6fee6c3580374327380f88d065b/vae_transparent_decoder.safetensors")
    assert md.Downloader().url_for(md.MODEL_FILES["encoder"]) == (
        "https://huggingface.co/LayerDiffusion/layerdiffusion-v1/resolve/main/vae_transparent_encoder.safetensors")
    monkeypatch.setenv(md.ENDPOINT_ENV, "https://mirror.example/")
    assert md.Downloader().url_for(md.MODEL_FILES["attn"]).startswith(
        "https://mirror.example/LayerDiffusion/")


def test_file_keys():
    assert md.parse_file_keys("attn, decoder") == ("attn", "decoder")
    assert md.parse_file_keys("all") == md.downloadable_keys()
    assert md.parse_file_keys("decoder,all")[:4] == ("decoder", "attn", "conv", "encoder")
    with pytest.raises(ValueError, match="unknown file 'flux_decoder'"):
        md.parse_file_keys("flux_decoder")  # made by `models convert`, not downloadable
    with pytest.raises(ValueError, match="unknown file 'vae'"):
        md.parse_file_keys("attn,vae")
    with pytest.raises(ValueError, match="no files"):
        md.parse_file_keys(" , ")


# --- checks ------------------------------------------------------------------------------------

def _header_file(path, header: dict, data_size: int):
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + data_size)  # sparse: only the header is written


def _layout_header(shapes, dtype="F16", itemsize=2):
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = itemsize
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    return header, offset


def test_decoder_layout_is_checked_from_the_header(tmp_path):
    spec = md.ModelFile("decoder", "d.safetensors", "decoder", None, "")
    shapes = decoder_state_dict_shapes()
    header, size = _layout_header(shapes)
    good = tmp_path / "good.safetensors"
    _header_file(good, header, size)  # 208 MB file with the published layout, written sparse
    assert len(md.check_model_file(good, spec)) == 538
    # A tensor of another width (an SD1.5 / modified decoder) and a missing tensor.
    del shapes["conv_out.bias"]
    shapes["conv_in.weight"] = (16, 3, 3, 3)
    header, size = _layout_header(shapes)
    bad = tmp_path / "bad.safetensors"
    _header_file(bad, header, size)
    with pytest.raises(md.IntegrityError) as info:
        md.check_model_file(bad, spec)
    message = str(info.value)
    assert "expected the 538 tensors of the transparent decoder, found 537" in message
    assert "1 missing (conv_out.bias)" in message and "1 with other shapes (conv_in.weight)" in message
    # A patch file given where the decoder is expected.
    patch = tmp_path / "patch.safetensors"
    patch.write_bytes(patch_bytes())
    with pytest.raises(md.IntegrityError, match="538"):
        md.check_model_file(patch, spec)


def test_broken_safetensors_files_are_named(tmp_path):
    spec = md.ModelFile("attn", PATCH, "patch", None, "")
    data = patch_bytes()
    cases = {
        "short": b"abc",
        "bad_length": struct.pack("<Q", 10**9) + b"{}",
        "not_json": struct.pack("<Q", 4) + b"{{{{",
        "truncated": data[:-100],
        "trailing": data + b"\0" * 10,
        "pickle": b"\x80\x04\x95" + b"\0" * 64,
    }
    expected = {
        "short": "too short", "bad_length": "header length", "not_json": "not valid JSON",
        "truncated": "shorter than its header", "trailing": "after the last tensor",
        "pickle": "header length",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(md.IntegrityError, match=expected[name]):
            md.check_model_file(path, spec)
    header, size = _layout_header({"a": (4,), "b": (4,)})
    header["b"]["data_offsets"] = [16, 24]  # a gap after "a"
    gap = tmp_path / "gap"
    _header_file(gap, header, 24)
    with pytest.raises(md.IntegrityError, match="gaps"):
        md.read_safetensors_header(gap)
    wrong_keys = tmp_path / "lora.safetensors"
    wrong_keys.write_bytes(safetensors.torch.save({"lora_unet_down.weight": torch.zeros(2)}))
    with pytest.raises(md.IntegrityError, match="not a Layer Diffusion UNet patch file"):
        md.check_model_file(wrong_keys, spec)
    assert len(md.read_safetensors_header(_write(tmp_path / "ok", data))) == 3


def _write(path, data):
    path.write_bytes(data)
    return path


# --- destination -------------------------------------------------------------------------------

def test_destination_folder(tmp_path, comfy):
    layer = comfy / "models" / "layer_model"
    empty_env = {}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert md.resolve_layer_model_dir(str(comfy), environ=empty_env) == layer
    assert md.resolve_layer_model_dir(str(comfy / "models"), environ=empty_env) == layer
    assert md.resolve_layer_model_dir(str(layer), environ=empty_env) == layer  # need not exist
    with pytest.raises(ValueError, match="not a ComfyUI folder"):
        md.resolve_layer_model_dir(str(elsewhere), environ=empty_env)
    # Without --dest: COMFYUI_DIR, then the ComfyUI the pack is installed in, then the cwd.
    pack = comfy / "custom_nodes" / "ComfyUI-LD-Portrait"
    pack.mkdir(parents=True)
    assert md.resolve_layer_model_dir(environ={"COMFYUI_DIR": str(comfy)}, cwd=elsewhere,
                                      package_dir=elsewhere) == layer
    assert md.resolve_layer_model_dir(environ=empty_env, cwd=elsewhere, package_dir=pack) == layer
    assert md.resolve_layer_model_dir(environ=empty_env, cwd=comfy, package_dir=elsewhere) == layer
    with pytest.raises(ValueError, match="--dest"):
        md.resolve_layer_model_dir(environ=empty_env, cwd=elsewhere, package_dir=elsewhere)


# --- downloads ---------------------------------------------------------------------------------

def test_full_download_through_the_command(server, comfy):
    code, out, err = run_cli(["models", "download", "--dest", str(comfy), "--files", "attn,encoder"])
    assert code == 0, err
    layer = comfy / "models" / "layer_model"
    for name in (PATCH, ENCODER):
        assert (layer / name).read_bytes() == server.files[name]
        assert not (layer / (name + ".part")).exists()
    assert "attn: downloaded" in out and "SHA-256 checked" in out and "2 file(s) ready" in out
    assert [r[1] for r in server.requests] == [None, None]  # fresh downloads, no ranges
    # Run again: both present and valid, nothing is requested.
    code, out, _ = run_cli(["models", "download", "--dest", str(comfy), "--files", "all"])
    assert code == 0 and out.count("skipped") == 2 and len(server.requests) == 2


def test_resume_after_a_truncated_part_file(server, tmp_path):
    data = server.files[PATCH]
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(data[:10000])
    result = downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert result.status == "downloaded" and result.sha256 == sha(data)
    assert (folder / PATCH).read_bytes() == data
    assert server.requests == [(PREFIX + PATCH, "bytes=10000-")]
    assert server.sent == len(data) - 10000  # only the missing bytes travelled


def test_dropped_connection_is_resumed_in_the_same_run(server, tmp_path):
    data = server.files[PATCH]
    server.drop_after[PATCH] = 5000
    result = downloader().fetch(md.MODEL_FILES["attn"], tmp_path / "layer_model")
    assert result.path.read_bytes() == data
    assert [r[1] for r in server.requests] == [None, "bytes=5000-"]


def test_server_ignoring_ranges_starts_again(server, tmp_path):
    data = server.files[PATCH]
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(b"\xff" * 7000)  # even garbage is simply replaced
    server.ignore_range = True
    downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert (folder / PATCH).read_bytes() == data


def test_stale_part_longer_than_the_file_starts_again(server, tmp_path):
    data = server.files[PATCH]
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(data + b"0" * 50)  # from another, larger version
    downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert (folder / PATCH).read_bytes() == data
    assert [r[1] for r in server.requests] == [f"bytes={len(data) + 50}-", None]


def test_resumed_part_from_another_version_is_detected(server, tmp_path):
    data = server.files[PATCH]
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(patch_bytes(seed=5)[:10000])  # same length, other bytes
    downloader().fetch(md.MODEL_FILES["attn"], folder)  # hash fails, one fresh download follows
    assert (folder / PATCH).read_bytes() == data
    assert [r[1] for r in server.requests] == ["bytes=10000-", None]


@pytest.mark.parametrize("corruption", ["bit_flip", "cut_off", "wrong_model"])
def test_corrupt_download_is_rejected_and_not_installed(server, tmp_path, corruption):
    data = server.files[PATCH]
    if corruption == "bit_flip":  # structure intact, hash wrong
        broken, message = data[:-1] + bytes([data[-1] ^ 1]), "differs from the published"
    elif corruption == "cut_off":  # the server itself holds a truncated file
        broken, message = data[:-500], "shorter than its header"
    else:
        broken, message = encoder_bytes(), "not a Layer Diffusion UNet patch file"
    server.files[PATCH] = broken
    folder = tmp_path / "layer_model"
    with pytest.raises(md.DownloadError, match=message) as info:
        downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert "nothing was installed" in str(info.value)
    assert not (folder / PATCH).exists() and not (folder / (PATCH + ".part")).exists()
    if corruption == "bit_flip":
        assert "--no-sha256" in str(info.value)


def test_checksum_reported_by_the_server_on_redirect(server, tmp_path):
    data = server.files[PATCH]
    unhashed = md.ModelFile("attn", PATCH, "patch", None, "no published hash")
    server.linked_etag[PATCH] = "0" * 64
    with pytest.raises(md.DownloadError, match="differs from the one the server reports 0000"):
        downloader().fetch(unhashed, tmp_path / "a")
    server.linked_etag[PATCH] = sha(data)
    result = downloader().fetch(unhashed, tmp_path / "b")
    assert result.sha256 == sha(data) and result.path.read_bytes() == data
    assert server.requests[-1] == ("/store/" + PATCH, None)  # followed the redirect


def test_resume_through_the_redirect_keeps_the_range(server, tmp_path):
    data = server.files[PATCH]
    server.linked_etag[PATCH] = sha(data)
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(data[:6000])
    downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert (folder / PATCH).read_bytes() == data
    assert server.requests == [(PREFIX + PATCH, "bytes=6000-"), ("/store/" + PATCH, "bytes=6000-")]


def test_complete_part_file_is_installed_without_downloading_again(server, tmp_path):
    data = server.files[PATCH]
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(data)  # e.g. stopped just before the rename
    result = downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert result.status == "downloaded" and result.path.read_bytes() == data
    assert server.requests == [(PREFIX + PATCH, f"bytes={len(data)}-")] and server.sent == 0


def test_no_sha256_accepts_an_updated_upstream_file(server, tmp_path):
    updated = patch_bytes(seed=9)
    server.files[PATCH] = updated  # the recorded hash is of the old file
    with pytest.raises(md.DownloadError, match="published"):
        downloader().fetch(md.MODEL_FILES["attn"], tmp_path / "a")
    result = downloader(verify_sha256=False).fetch(md.MODEL_FILES["attn"], tmp_path / "b")
    assert result.path.read_bytes() == updated and result.sha256 is None


def test_existing_files_skipped_replaced_and_forced(server, tmp_path):
    data = server.files[PATCH]
    folder = tmp_path / "layer_model"
    spec = md.MODEL_FILES["attn"]
    assert downloader().fetch(spec, folder).status == "downloaded"
    assert downloader().fetch(spec, folder).status == "skipped" and len(server.requests) == 1
    assert downloader().fetch(spec, folder, force=True).status == "replaced"
    assert len(server.requests) == 2 and (folder / PATCH).read_bytes() == data
    # A file cut short on disk is found invalid and replaced.
    (folder / PATCH).write_bytes(data[:3000])
    assert downloader().fetch(spec, folder).status == "replaced"
    assert (folder / PATCH).read_bytes() == data
    # A flipped data byte passes the quick check; --verify-existing hashes and replaces it.
    (folder / PATCH).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert downloader().fetch(spec, folder).status == "skipped"
    assert downloader().fetch(spec, folder, verify_existing=True).status == "replaced"
    assert (folder / PATCH).read_bytes() == data


def test_force_through_the_command(server, comfy):
    assert run_cli(["models", "download", "--dest", str(comfy), "--files", "attn"])[0] == 0
    code, out, _ = run_cli(["models", "download", "--dest", str(comfy), "--files", "attn", "--force"])
    assert code == 0 and "attn: replaced" in out and len(server.requests) == 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_network_failure_is_a_clear_error_and_keeps_the_partial_file(server, tmp_path):
    folder = tmp_path / "layer_model"
    folder.mkdir()
    (folder / (PATCH + ".part")).write_bytes(server.files[PATCH][:2048])
    dead = downloader(base_url=f"http://127.0.0.1:{_closed_port()}", retries=2)
    with pytest.raises(md.DownloadError) as info:
        dead.fetch(md.MODEL_FILES["attn"], folder)
    message = str(info.value)
    assert "network error" in message and "gave up after 3 attempts" in message
    assert "run the same command again to resume" in message
    assert (folder / (PATCH + ".part")).stat().st_size == 2048 and not (folder / PATCH).exists()
    downloader().fetch(md.MODEL_FILES["attn"], folder)  # and it resumes later
    assert server.requests == [(PREFIX + PATCH, "bytes=2048-")]


def test_missing_upstream_file_and_command_exit_codes(server, comfy):
    del server.files[PATCH]
    code, _, err = run_cli(["models", "download", "--dest", str(comfy), "--files", "attn,encoder"])
    assert code == 1 and "not found" in err and "HTTP 404" in err and "1 of 2 file(s) failed" in err
    assert (comfy / "models" / "layer_model" / ENCODER).exists()  # the other file still came
    code, _, err = run_cli(["models", "download", "--dest", str(comfy.parent)])
    assert code == 2 and "not a ComfyUI folder" in err
    with pytest.raises(SystemExit):
        run_cli(["models", "download", "--files", "attn,nonsense"])


def test_full_disk_is_refused_before_writing(server, tmp_path, monkeypatch):
    class Usage:
        free = 1000

    monkeypatch.setattr(md.shutil, "disk_usage", lambda path: Usage())
    folder = tmp_path / "layer_model"
    with pytest.raises(md.DownloadError, match="not enough disk space"):
        downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert list(folder.iterdir()) == []


def test_disk_full_while_writing_keeps_the_partial_file(server, tmp_path, monkeypatch):
    real_open = md._open_part

    class FillsUp:
        def __init__(self, handle):
            self.handle = handle

        def write(self, block):
            if self.handle.tell() + len(block) > 8192:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(block)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(md, "_open_part", lambda part, have: FillsUp(real_open(part, have)))
    folder = tmp_path / "layer_model"
    with pytest.raises(md.DownloadError, match="disk is full.*resumes"):
        downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert (folder / (PATCH + ".part")).stat().st_size == 8192 and not (folder / PATCH).exists()
    monkeypatch.setattr(md, "_open_part", real_open)
    downloader().fetch(md.MODEL_FILES["attn"], folder)
    assert server.requests[-1][1] == "bytes=8192-"


def test_second_download_into_the_same_folder_is_refused(server, tmp_path):
    folder = tmp_path / "layer_model"
    folder.mkdir()
    with md._FolderLock(folder):
        with pytest.raises(md.DownloadError, match="another"):
            downloader().fetch(md.MODEL_FILES["attn"], folder)
    downloader().fetch(md.MODEL_FILES["attn"], folder)


def test_progress_is_reported(server, tmp_path):
    stream = io.StringIO()
    downloader(progress_stream=stream).fetch(md.MODEL_FILES["encoder"], tmp_path / "layer_model")
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith(ENCODER + " [") for line in lines)
    assert "MiB/s" in lines[-1] and "#" * 24 in lines[-1]  # the last line shows 100%


# --- families -----------------------------------------------------------------------------------

def flux_lora_bytes(seed=0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    stem = "transformer.single_transformer_blocks.0.attn.to_q"
    return safetensors.torch.save({f"{stem}.lora_A.weight": torch.randn(4, 32, generator=g).half(),
                                   f"{stem}.lora_B.weight": torch.randn(32, 4, generator=g).half()})


def transparent_vae_pth_bytes(tmp_path, seed=0) -> bytes:
    from comfyui_ld_portrait.layerdiffusion.decoder import random_decoder_state_dict

    g = torch.Generator().manual_seed(seed)
    state = {f"decoder.{k}": v.half() for k, v in random_decoder_state_dict(seed, latent_channels=16).items()}
    state.update({f"encoder.{k}": (torch.randn(s, generator=g) * 0.05).half()
                  for k, s in encoder_state_dict_shapes(16).items()})
    path = tmp_path / "source.pth"
    torch.save(state, path)
    return path.read_bytes()


def test_flux_family_download_puts_the_lora_in_loras_and_converts_the_vae(server, comfy, monkeypatch, tmp_path):
    from comfyui_ld_portrait.layerdiffusion import model_files

    lora, vae = model_files.MODEL_FILES["flux_lora"], model_files.MODEL_FILES["flux_vae"]
    server.files = {lora.file_name: flux_lora_bytes(), vae.file_name: transparent_vae_pth_bytes(tmp_path)}
    monkeypatch.setattr(md, "MODEL_FILES", {
        "flux_lora": md.ModelFile("flux_lora", lora.file_name, "lora", sha(server.files[lora.file_name]),
                                  "test LoRA", family="flux", folder="loras", repository=lora.repository),
        "flux_vae": md.ModelFile("flux_vae", vae.file_name, "pickle_vae", sha(server.files[vae.file_name]),
                                 "test VAE", family="flux", repository=vae.repository),
    })
    code, out, err = run_cli(["models", "download", "--dest", str(comfy), "--family", "flux"])
    assert code == 0, err
    assert (comfy / "models" / "loras" / lora.file_name).read_bytes() == server.files[lora.file_name]
    layer = comfy / "models" / "layer_model"
    assert (layer / vae.file_name).read_bytes() == server.files[vae.file_name]
    decoder = ld_weights.load_transparent_decoder(layer / model_files.MODEL_FILES["flux_decoder"].file_name)
    assert decoder.latent_channels == 16
    assert (layer / model_files.MODEL_FILES["flux_encoder"].file_name).is_file()
    assert [path for path, _ in server.requests] == [
        f"/RedAIGC/Flux-version-LayerDiffuse/resolve/main/{lora.file_name}",
        f"/RedAIGC/Flux-version-LayerDiffuse/resolve/main/{vae.file_name}"]
    assert "16 latent channels" in out
    # Again: both present and valid, the converted files too; nothing is fetched or rewritten.
    code, out, _ = run_cli(["models", "download", "--dest", str(comfy), "--family", "flux"])
    assert code == 0 and out.count("skipped") == 2 and "converted files already present" in out
    assert len(server.requests) == 2
    code, _, err = run_cli(["models", "download", "--dest", str(comfy), "--family", "flux", "--files", "flux_lora"])
    assert code == 2 and "not both" in err


def test_family_file_checks(tmp_path):
    from helpers.sd15_attention import attention_sharing_file, sd15_like_model

    from comfyui_ld_portrait.layerdiffusion import model_files

    _, modules = sd15_like_model()
    good = _write(tmp_path / "a.safetensors", safetensors.torch.save(attention_sharing_file(modules)))
    assert len(md.check_model_file(good, model_files.MODEL_FILES["sd15_attn"])) == 640
    with pytest.raises(md.IntegrityError, match="not the SD1.5 transparent attention file"):
        md.check_model_file(_write(tmp_path / "p.safetensors", patch_bytes()), model_files.MODEL_FILES["sd15_attn"])
    with pytest.raises(md.IntegrityError, match="not a LoRA file"):
        md.check_model_file(_write(tmp_path / "e.safetensors", encoder_bytes()), model_files.MODEL_FILES["flux_lora"])
    md.check_model_file(_write(tmp_path / "l.safetensors", flux_lora_bytes()), model_files.MODEL_FILES["flux_lora"])
    pth = _write(tmp_path / "v.pth", transparent_vae_pth_bytes(tmp_path))
    md.check_model_file(pth, model_files.MODEL_FILES["flux_vae"])  # a zip, never unpickled
    with pytest.raises(md.IntegrityError, match="not a complete torch archive"):
        md.check_model_file(_write(tmp_path / "cut.pth", pth.read_bytes()[:-5000]), model_files.MODEL_FILES["flux_vae"])
    # A 4-channel decoder where the table says 16 is refused by its layout.
    header, size = _layout_header(decoder_state_dict_shapes(4))
    _header_file(tmp_path / "d.safetensors", header, size)
    with pytest.raises(md.IntegrityError, match="latent_conv_in.weight"):
        md.check_model_file(tmp_path / "d.safetensors", model_files.MODEL_FILES["flux_decoder"])
