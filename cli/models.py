"""``ld-portrait models download|convert``: the Layer Diffusion weight files, only when asked.

- ``download [--family sdxl|sd15|flux] [--files LIST] [--dest DIR]``: fetch what a family's
  workflows need (resumable, verified; see ``layerdiffusion/download.py``). The Flux LoRA goes
  to ``models/loras`` (ComfyUI's own LoRA loader applies it); the Flux ``TransparentVAE.pth``
  is then converted to two safetensors files in ``models/layer_model``.
- ``convert IN.pth OUT_DIR``: a pickled transparent VAE -> two safetensors files, read with
  ``torch.load(weights_only=True)`` only (anything that needs more is refused, unrun).

The file table is ``layerdiffusion/model_files.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, TextIO, Tuple

from ..layerdiffusion import model_files
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run_error, usage_error

__all__ = ["register", "run_download_command", "run_convert_command"]

_MIB = 1024 * 1024


def _file_keys_argument(text: str) -> Tuple[str, ...]:
    from ..layerdiffusion.download import parse_file_keys

    try:
        return parse_file_keys(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(commands) -> argparse.ArgumentParser:
    """Add ``models download`` and ``models convert`` to ``ld-portrait``; returns ``models``."""
    models = commands.add_parser(
        "models", help="download or convert the Layer Diffusion weight files",
        description="Manage the Layer Diffusion weight files in ComfyUI/models/layer_model "
                    "(and the Flux LoRA in models/loras).")
    models.set_defaults(handler=lambda args, stdout, stderr: (models.print_help(stdout), EXIT_USAGE)[1])
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    table = "; ".join(f"{spec.key}: {spec.file_name} ({spec.summary})"
                      for spec in model_files.MODEL_FILES.values() if spec.repository)
    families = ", ".join(f"{family}: {','.join(keys)}" for family, keys in model_files.FAMILY_FILES.items())
    download = actions.add_parser(
        "download", help="download the Layer Diffusion files of a model family (resumable, verified)",
        description=(
            "Download Layer Diffusion files from Hugging Face into ComfyUI/models/layer_model "
            "(the Flux LoRA into models/loras). Interrupted downloads resume; files are checked "
            "(structure, expected tensors, SHA-256) before they are put in place. "
            f"Families: {families}. Files: {table}. HF_ENDPOINT selects a mirror."),
        epilog="Exit codes: 0 every file present and valid, 1 a file failed (the message says "
               "why; partial downloads are kept for a resume), 2 bad arguments.")
    download.add_argument("--dest", metavar="DIR",
                          help="a ComfyUI folder, its models folder or models/layer_model "
                               "(default: $COMFYUI_DIR, the ComfyUI this pack is installed in, or "
                               "the current folder)")
    download.add_argument("--family", choices=model_files.FAMILIES,
                          help="fetch what this family's workflows need (default: sdxl)")
    download.add_argument("--files", type=_file_keys_argument, metavar="LIST",
                          help="comma-separated file keys or all (instead of --family)")
    download.add_argument("--force", action="store_true",
                          help="download again even when a valid file is present")
    download.add_argument("--verify-existing", action="store_true",
                          help="also check the SHA-256 of files already present (reads them)")
    download.add_argument("--no-sha256", action="store_true",
                          help="accept files whose SHA-256 differs from the one recorded in "
                               "this tool (a mirror serving another revision); structure and "
                               "the server's checksum are still checked")
    download.set_defaults(handler=run_download_command)

    convert = actions.add_parser(
        "convert", help="pickled TransparentVAE.pth -> two safetensors files",
        description="Read a transparent VAE saved with torch.save (the Flux release's "
                    "TransparentVAE.pth) with torch.load(weights_only=True) only (a file that "
                    "needs more is refused and nothing in it is run), check its decoder and "
                    "encoder, and write them as two safetensors files into OUT_DIR (for ComfyUI: "
                    "models/layer_model).",
        epilog="Exit codes: 0 written, 1 the input was refused or a check failed, 2 bad arguments.")
    convert.add_argument("input", metavar="IN.pth")
    convert.add_argument("output_dir", metavar="OUT_DIR")
    convert.add_argument("--force", action="store_true", help="replace existing output files")
    convert.set_defaults(handler=run_convert_command)
    return models


def _convert_one(source: Path, output_dir: Path, force: bool, stdout: TextIO) -> None:
    from ..layerdiffusion.convert import convert_transparent_vae

    result = convert_transparent_vae(source, output_dir, force=force)
    ignored = f"; left out: {', '.join(result.ignored)}" if result.ignored else ""
    stdout.write(f"converted {source.name} ({result.latent_channels} latent channels{ignored}):\n"
                 f"  {result.decoder_path}\n  {result.encoder_path}\n")


def run_convert_command(args, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Handler of ``ld-portrait models convert``."""
    from ..layerdiffusion.convert import ConversionError
    from ..layerdiffusion.weights import WeightFileError

    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    source = Path(args.input)
    if not source.is_file():
        return usage_error(stderr, f"{str(source)!r} does not exist or is not a file.")
    try:
        _convert_one(source, Path(args.output_dir), args.force, stdout)
    except (ConversionError, WeightFileError, FileExistsError, OSError) as error:
        return run_error(stderr, error)
    return EXIT_OK


def _folder_for(spec, layer_model_dir: Path) -> Path:
    if spec.folder == model_files.LAYER_MODEL_FOLDER:
        return layer_model_dir
    return layer_model_dir.parent / spec.folder  # e.g. models/loras beside models/layer_model


def _after_download(spec, path: Path, force: bool, stdout: TextIO) -> None:
    """Convert the pickled Flux VAE into the two files the nodes read (once)."""
    outputs = model_files.CONVERTED_FROM.get(spec.key)
    if not outputs:
        return
    targets = [path.parent / model_files.MODEL_FILES[key].file_name for key in outputs]
    if all(t.exists() for t in targets) and not force:
        stdout.write(f"{spec.key}: converted files already present ({', '.join(t.name for t in targets)})\n")
        return
    _convert_one(path, path.parent, True, stdout)


def run_download_command(args, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None,
                         *, downloader=None) -> int:
    """Handler of ``ld-portrait models download``; returns the exit code."""
    from ..layerdiffusion import download as ld_download
    from ..layerdiffusion.convert import ConversionError
    from ..layerdiffusion.weights import WeightFileError

    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    if args.files and args.family:
        return usage_error(stderr, "give --family or --files, not both.")
    keys = args.files or model_files.FAMILY_FILES[args.family or "sdxl"]
    try:
        folder = ld_download.resolve_layer_model_dir(args.dest)
    except ValueError as error:
        return usage_error(stderr, str(error))
    if downloader is None:
        from ..dataset.version import tool_version

        downloader = ld_download.Downloader(verify_sha256=not args.no_sha256, progress_stream=stderr,
                                            user_agent=f"ld-portrait/{tool_version()}")
    failed = 0
    for key in keys:
        spec = ld_download.MODEL_FILES[key]
        try:
            result = downloader.fetch(spec, _folder_for(spec, folder), force=args.force,
                                      verify_existing=args.verify_existing)
            checked = "SHA-256 checked" if result.sha256 else "structure checked"
            stdout.write(f"{key}: {result.status} {result.path} ({result.size / _MIB:.1f} MiB, "
                         f"{checked})\n")
            _after_download(spec, result.path, args.force, stdout)
        except (ld_download.DownloadError, ConversionError, WeightFileError, OSError) as error:
            stderr.write(f"ld-portrait: error: {error}\n")
            failed += 1
    if failed:
        stderr.write(f"ld-portrait: {failed} of {len(keys)} file(s) failed.\n")
        return EXIT_FAILED
    stdout.write(f"{len(keys)} file(s) ready in {folder}\n")
    return EXIT_OK
