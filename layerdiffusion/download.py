"""Fetch the published Layer Diffusion files, when asked (``ld-portrait models download``).

Nothing in the pack downloads anything by itself: the nodes read ``models/layer_model`` and
say which file is missing. The files, their repositories, hashes and kinds are the table in
``model_files`` (one source of truth); the command line is ``cli/models.py``. Standard library
only (``urllib``).

How (every file):

- Resumable: bytes go to ``<file>.part``; a later run continues it with an HTTP ``Range``
  request (a server that ignores ranges makes it start again). Transient network errors are
  retried a few times, resuming each time; Ctrl-C keeps the partial file.
- Atomic: the ``.part`` file is renamed onto the final name only after every check passed, so
  ComfyUI never sees a half-written model.
- Checked: the safetensors header must parse and index the whole file exactly; the tensors
  must be the expected model (decoder: the 538 tensors of the published layout with 4 or 16
  latent channels as the table says; encoder: its 18; patch files: only
  ``diffusion_model.<key>::lora|diff::<n>`` entries; the SD1.5 attention-sharing file: its
  module set; the Flux LoRA: LoRA tensors only). The pickled Flux VAE is checked as a torch
  zip archive without being unpickled (``convert`` reads it with ``weights_only=True``). The
  SHA-256 must equal the published one (for the files whose hash is recorded) and the one the
  server reports (Hugging Face sends it for large files). A file that fails is deleted.
- Up front: a file already present and structurally valid is skipped (``verify_existing``
  also checks its hash; ``force`` downloads it again); a destination without room for the
  rest of a file is refused before anything is written.

``HF_ENDPOINT`` (as for the Hugging Face tools) points at a mirror; HTTP(S) proxies come from
the usual environment variables.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import time
import zipfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, TextIO, Tuple

from .listing import abbreviate as _abbreviate, counted_lists
from .model_files import LAYER_MODEL_FOLDER, MODEL_FILES, ModelFile


__all__ = [
    "MODEL_FILES",
    "DEFAULT_FILES",
    "ModelFile",
    "DownloadError",
    "IntegrityError",
    "DownloadResult",
    "Downloader",
    "read_safetensors_header",
    "check_model_file",
    "file_sha256",
    "resolve_layer_model_dir",
    "parse_file_keys",
    "downloadable_keys",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
ENDPOINT_ENV = "HF_ENDPOINT"
COMFYUI_DIR_ENV = "COMFYUI_DIR"
PART_SUFFIX = ".part"

_MIB = 1024 * 1024
_MAX_HEADER_BYTES = 100 * _MIB  # safetensors' own limit
_DISK_MARGIN_BYTES = 16 * _MIB  # leave some room for everything else on the disk


DEFAULT_FILES: Tuple[str, ...] = ("attn", "decoder")


class DownloadError(Exception):
    """A file could not be downloaded, verified or installed; the message says what to do."""


class IntegrityError(ValueError):
    """A file is not a valid safetensors file, or not the model it should be."""


# --- checks ------------------------------------------------------------------------------------

_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
_FLOAT_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"})
_PATCH_KEY = re.compile(r"^diffusion_model\.[A-Za-z0-9_.]+::(lora|diff)::\d+$")


def read_safetensors_header(path) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Parse and check a safetensors header without reading the tensors.

    Checks what a loader relies on: the 8-byte header length, a JSON object header, a known
    dtype and a shape for every tensor, byte ranges that match dtype x shape and that tile the
    data area exactly (no gap, no overlap, nothing missing: a truncated file fails here).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str to (dtype, shape)
        Every tensor's dtype name (``"F16"`` ...) and shape; ``__metadata__`` is left out.

    Raises
    ------
    IntegrityError
        With the reason.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise IntegrityError(f"the file is {size} bytes, too short for a safetensors header")
        header_len = int.from_bytes(prefix, "little")
        if header_len > min(size - 8, _MAX_HEADER_BYTES):
            raise IntegrityError(
                f"the header length field says {header_len} bytes but the file has {size} bytes: "
                "not a safetensors file, or cut off (an interrupted download)")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise IntegrityError(f"the safetensors header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise IntegrityError("the safetensors header is not a JSON object")
    data_bytes = size - 8 - header_len
    tensors, ranges = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise IntegrityError(f"tensor {name!r} has a malformed header entry") from None
        if dtype not in _DTYPE_BYTES:
            raise IntegrityError(f"tensor {name!r} has an unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise IntegrityError(f"tensor {name!r} has a malformed shape {shape!r}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
            raise IntegrityError(f"tensor {name!r} has malformed data offsets")
        if end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise IntegrityError(
                f"tensor {name!r}: {end - begin} bytes do not hold a {dtype} tensor of shape "
                f"{tuple(shape)}")
        tensors[name] = (dtype, tuple(shape))
        ranges.append((begin, end))
    position = 0
    for begin, end in sorted(ranges):
        if begin != position:
            raise IntegrityError("the tensors' byte ranges overlap or leave gaps")
        position = end
    if position != data_bytes:
        missing = position - data_bytes
        if missing > 0:
            raise IntegrityError(
                f"the file is {missing} bytes shorter than its header says: cut off (an "
                "interrupted download)")
        raise IntegrityError(f"the file has {-missing} bytes after the last tensor")
    return tensors


def _expected_shapes(kind: str, latent_channels: Optional[int]) -> Mapping[str, Tuple[int, ...]]:
    # The layouts come from the library's networks (which import torch; only needed here).
    channels = latent_channels or 4
    if kind == "decoder":
        from .decoder import decoder_state_dict_shapes

        return decoder_state_dict_shapes(channels)
    from .encoder import encoder_state_dict_shapes

    return encoder_state_dict_shapes(channels)


def check_pickle_archive(path) -> None:
    """Check that ``path`` is a complete torch zip archive holding a pickle, *without*
    unpickling anything (``convert`` later reads it with ``weights_only=True``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise IntegrityError(f"not a complete torch archive (zip): {error}") from None
    if broken is not None:
        raise IntegrityError(f"the archive member {broken!r} is corrupt")
    if not any(name.endswith("data.pkl") for name in names):
        raise IntegrityError("the archive holds no data.pkl: not a torch.save file")


def check_model_file(path, spec: ModelFile) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Check that ``path`` is a valid safetensors file holding the model ``spec`` names.

    - ``decoder`` / ``encoder``: exactly the tensor names and shapes of the published layout
      (538 / 18 tensors), any floating dtype.
    - ``patch``: at least one tensor, every name ``diffusion_model.<key>::lora|diff::<n>``,
      floating point.

    Returns
    -------
    dict
        The header (see :func:`read_safetensors_header`).

    Raises
    ------
    IntegrityError
        What is wrong, for a message.
    """
    if spec.kind == "pickle_vae":
        check_pickle_archive(path)
        return {}
    tensors = read_safetensors_header(path)
    not_float = [n for n, (dtype, _) in tensors.items() if dtype not in _FLOAT_DTYPES]
    if not_float:
        raise IntegrityError(f"{len(not_float)} tensors are not floating point "
                             f"({_abbreviate(not_float)})")
    if spec.kind == "patch":
        wrong = [n for n in tensors if not _PATCH_KEY.match(n)]
        if not tensors or wrong:
            raise IntegrityError(
                f"not a Layer Diffusion UNet patch file: {len(wrong)} of {len(tensors)} tensor "
                f"names are not 'diffusion_model.<key>::lora|diff::<n>' ({_abbreviate(wrong)})")
        return tensors
    if spec.kind == "lora":
        wrong = [n for n in tensors if "lora" not in n.lower() and not n.endswith(".alpha")]
        if not tensors or wrong:
            raise IntegrityError(f"not a LoRA file: {len(wrong)} of {len(tensors)} tensor names "
                                 f"are not LoRA weights ({_abbreviate(wrong)})")
        return tensors
    if spec.kind == "attn_sharing":
        from .attention_sharing import check_attention_sharing_keys

        try:
            check_attention_sharing_keys(list(tensors))
        except ValueError as error:
            raise IntegrityError(str(error)) from None
        return tensors
    if spec.kind not in ("decoder", "encoder"):
        raise ValueError(f"unknown file kind {spec.kind!r}")
    expected = _expected_shapes(spec.kind, spec.latent_channels)
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in expected]
    misshaped = [n for n in expected if n in tensors and tensors[n][1] != tuple(expected[n])]
    if missing or unexpected or misshaped:
        parts = [f"expected the {len(expected)} tensors of the transparent {spec.kind}, found "
                 f"{len(tensors)}"]
        parts += counted_lists((("missing", missing), ("unexpected", unexpected),
                                ("with other shapes", misshaped)))
        raise IntegrityError("; ".join(parts))
    return tensors


def file_sha256(path, chunk_size: int = 8 * _MIB) -> str:
    """Lower-case hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


# --- destination -------------------------------------------------------------------------------

def _is_comfyui_root(folder: Path) -> bool:
    return (folder / "main.py").is_file() and (folder / "models").is_dir()


def resolve_layer_model_dir(dest: Optional[str] = None, *, environ: Optional[Mapping[str, str]] = None,
                            cwd: Optional[Path] = None, package_dir: Optional[Path] = None) -> Path:
    """The ``models/layer_model`` folder to download into (not created here).

    Parameters
    ----------
    dest : str, optional
        A ComfyUI folder (has ``main.py`` and ``models/``), a models folder (named ``models``
        or holding ``checkpoints/`` or ``layer_model/``) or a folder named ``layer_model``.
    environ, cwd, package_dir
        For tests: the environment (``COMFYUI_DIR``), the current folder and the pack folder.

    Raises
    ------
    ValueError
        ``dest`` is none of those, or no ComfyUI could be found without it.
    """
    environ = os.environ if environ is None else environ
    if dest is not None and str(dest).strip():
        folder = Path(str(dest).strip()).expanduser()
        if folder.name == LAYER_MODEL_FOLDER:
            return folder
        if _is_comfyui_root(folder):
            return folder / "models" / LAYER_MODEL_FOLDER
        if folder.is_dir() and (folder.name == "models" or (folder / "checkpoints").is_dir()
                                or (folder / LAYER_MODEL_FOLDER).is_dir()):
            return folder / LAYER_MODEL_FOLDER
        raise ValueError(
            f"--dest {str(folder)!r} is not a ComfyUI folder (with main.py and models/), a "
            "ComfyUI models folder or a folder named layer_model. Pass e.g. "
            "/path/to/ComfyUI or /path/to/ComfyUI/models/layer_model.")
    candidates = []
    if environ.get(COMFYUI_DIR_ENV, "").strip():
        candidates.append(Path(environ[COMFYUI_DIR_ENV].strip()).expanduser())
    package_dir = Path(__file__).resolve().parent if package_dir is None else Path(package_dir)
    if package_dir.parent.name == "custom_nodes":
        candidates.append(package_dir.parent.parent)
    candidates.append(Path.cwd() if cwd is None else Path(cwd))
    for candidate in candidates:
        if _is_comfyui_root(candidate):
            return candidate / "models" / LAYER_MODEL_FOLDER
    raise ValueError(
        "cannot tell where ComfyUI is: pass --dest /path/to/ComfyUI (or its models/layer_model "
        f"folder), or set {COMFYUI_DIR_ENV}.")


def downloadable_keys() -> Tuple[str, ...]:
    """Keys of :data:`MODEL_FILES` that have a download address (not the converted files)."""
    return tuple(key for key, spec in MODEL_FILES.items() if spec.repository is not None)


def parse_file_keys(text: str) -> Tuple[str, ...]:
    """``"attn,decoder"`` / ``"all"`` -> keys of :data:`MODEL_FILES` (order kept, no repeats)."""
    words = [w.strip().lower() for w in str(text).split(",") if w.strip()]
    known = downloadable_keys()
    if not words:
        raise ValueError(f"no files named; choose from {', '.join(known)} or all")
    keys = []
    for word in words:
        for key in (known if word == "all" else [word]):
            if key not in known:
                raise ValueError(f"unknown file {word!r}; choose from {', '.join(known)} or all")
            if key not in keys:
                keys.append(key)
    return tuple(keys)


# --- transfer ----------------------------------------------------------------------------------

class _ByteProgress:
    """Progress of one file on a stream: redrawn in place on a terminal; in a log, a line at
    every 10% (and one at the end either way)."""

    def __init__(self, stream: Optional[TextIO], label: str, total: int, start: int):
        self.stream, self.label, self.total = stream, label, max(total, 1)
        self.start = self.done = start
        self.started = self._last = time.monotonic()
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._next_log = (start * 10 // self.total + 1) * self.total / 10

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.done - self.start) / elapsed
        remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = "--:--" if not math.isfinite(remaining) else f"{int(remaining) // 60}:{int(remaining) % 60:02d}"
        width = 24
        filled = int(width * self.done / self.total)
        return (f"{self.label} [{'#' * filled}{'-' * (width - filled)}] "
                f"{self.done / _MIB:.1f}/{self.total / _MIB:.1f} MiB {rate / _MIB:.1f} MiB/s ETA {eta}")

    def update(self, count: int) -> None:
        self.done += count
        if self.stream is None:
            return
        now = time.monotonic()
        if self.tty and now - self._last >= 0.1:
            self._last = now
            self.stream.write("\r" + self._line().ljust(100)[:110])
            self.stream.flush()
        elif not self.tty and self.done >= self._next_log and self.done < self.total:
            self._next_log += self.total / 10
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write(("\r" if self.tty else "") + self._line().ljust(100 if self.tty else 0) + "\n")
            self.stream.flush()


class _LinkedHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects (keeping the Range header, as urllib does) and keeps the checksum
    headers Hugging Face puts on the redirect to its file store."""

    def __init__(self):
        super().__init__()
        self.headers: Dict[str, str] = {}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        for name in ("X-Linked-Etag", "X-Linked-Size"):
            if headers.get(name):
                self.headers[name.lower()] = headers[name]
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _sha256_from_etag(value: Optional[str]) -> Optional[str]:
    text = (value or "").strip()
    text = text[2:] if text.startswith("W/") else text
    text = text.strip('"').lower()
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def _total_from_content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """(first byte, total) from ``bytes a-b/total`` or ``bytes */total``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+)\s*", value or "")
    if not match:
        return None, None
    return (int(match.group(1)) if match.group(1) else None), int(match.group(2))


@dataclass(frozen=True)
class DownloadResult:
    """What :meth:`Downloader.fetch` did.

    ``status``: ``"downloaded"``, ``"replaced"`` (an invalid or ``--force``d file was
    replaced) or ``"skipped"`` (already present and valid). ``sha256``: the hash the file was
    checked against, None when it was not hashed.
    """

    spec: ModelFile
    path: Path
    status: str
    size: int
    sha256: Optional[str]


class _Retry(Exception):
    """A transient failure: resume after a pause."""


class Downloader:
    """Downloads :class:`ModelFile` s into a folder: resumable, atomic, checked.

    Parameters
    ----------
    base_url : str, optional
        Hub address; default ``$HF_ENDPOINT`` or ``https://huggingface.co``.
    verify_sha256 : bool
        Require the published SHA-256 where one is recorded (the hash the server reports is
        checked either way).
    retries : int
        Transient network failures tolerated per file (each one resumes).
    retry_wait : float
        Seconds before the first retry; doubled each time.
    timeout : float
        Seconds without an answer or data before a connection counts as failed.
    progress_stream : file-like, optional
        Where progress is drawn (``None``: silent).
    user_agent : str
        HTTP User-Agent (the command line sends ``ld-portrait/<version>``).
    """

    def __init__(self, *, base_url: Optional[str] = None, verify_sha256: bool = True,
                 retries: int = 4, retry_wait: float = 2.0, timeout: float = 60.0,
                 chunk_size: int = _MIB, progress_stream: Optional[TextIO] = None,
                 user_agent: str = "ld-portrait"):
        base = base_url or os.environ.get(ENDPOINT_ENV, "").strip() or DEFAULT_ENDPOINT
        self.base_url = base.rstrip("/")
        self.verify_sha256 = verify_sha256
        self.retries, self.retry_wait, self.timeout = retries, retry_wait, timeout
        self.chunk_size = chunk_size
        self.progress_stream = progress_stream
        self.user_agent = user_agent

    def url_for(self, spec: ModelFile) -> str:
        url = spec.url(self.base_url)
        if url is None:
            raise DownloadError(f"{spec.file_name} is not published; it is made by "
                                "`ld-portrait models convert`.")
        return url

    # -- one file --

    def fetch(self, spec: ModelFile, folder, *, force: bool = False,
              verify_existing: bool = False) -> DownloadResult:
        """Make ``folder/spec.file_name`` a verified copy of the published file.

        Raises
        ------
        DownloadError
            Network failure (after retries; the partial file is kept for a later resume),
            missing file upstream, full disk, failed verification (the download is deleted),
            another download running into the same folder.
        """
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DownloadError(f"cannot create {folder}: {error.strerror or error}") from None
        final = folder / spec.file_name
        part = folder / (spec.file_name + PART_SUFFIX)
        with _FolderLock(folder):
            replacing = False
            if final.exists():
                if force:
                    replacing = True
                else:
                    problem = self._existing_problem(final, spec, verify_existing)
                    if problem is None:
                        return DownloadResult(spec, final, "skipped", final.stat().st_size,
                                              spec.sha256 if verify_existing else None)
                    replacing = True
                    self._say(f"{spec.file_name}: the file present is not valid ({problem}); "
                              "downloading it again.")
            if force and part.exists():
                part.unlink()
            size, sha256 = self._download_verified(spec, part)
            try:
                os.replace(part, final)
            except OSError as error:
                raise DownloadError(f"cannot move {part} to {final}: {error.strerror or error}") from None
            _sync_folder(folder)
        return DownloadResult(spec, final, "replaced" if replacing else "downloaded", size, sha256)

    def _existing_problem(self, path: Path, spec: ModelFile, verify_hash: bool) -> Optional[str]:
        try:
            check_model_file(path, spec)
        except IntegrityError as error:
            return str(error)
        except OSError as error:
            return f"unreadable: {error.strerror or error}"
        if verify_hash and spec.sha256 and self.verify_sha256:
            actual = file_sha256(path)
            if actual != spec.sha256:
                return f"SHA-256 {actual} differs from the published {spec.sha256}"
        return None

    def _say(self, text: str) -> None:
        if self.progress_stream is not None:
            self.progress_stream.write(text + "\n")
            self.progress_stream.flush()

    def _download_verified(self, spec: ModelFile, part: Path) -> Tuple[int, Optional[str]]:
        """Complete ``part`` and verify it; returns (size, the hash it matched)."""
        url = self.url_for(spec)
        failures, restarted = 0, False
        while True:
            resumed = part.exists() and part.stat().st_size > 0
            try:
                total, server_sha256 = self._transfer(url, spec, part)
            except _Retry as reason:
                failures += 1
                have = part.stat().st_size if part.exists() else 0
                if failures > self.retries:
                    kept = (f" The {have / _MIB:.1f} MiB received are kept in {part}; run the "
                            "same command again to resume.") if have else ""
                    raise DownloadError(
                        f"{spec.file_name}: network error from {url}: {reason} (gave up after "
                        f"{failures} attempts).{kept}") from None
                wait = self.retry_wait * 2 ** (failures - 1)
                self._say(f"{spec.file_name}: {reason}; retrying in {wait:.0f} s "
                          f"({failures}/{self.retries}).")
                time.sleep(wait)
                continue
            try:
                sha256 = self._verify(part, spec, total, server_sha256)
            except IntegrityError as error:
                part.unlink(missing_ok=True)
                if resumed and not restarted:
                    # The partial file may be stale (from another version): start afresh once.
                    restarted = True
                    self._say(f"{spec.file_name}: the resumed download failed its check "
                              f"({error}); downloading it from the start.")
                    continue
                hint = (" If you download from a mirror that serves another revision of the file, "
                        "run again with --no-sha256."
                        if "published" in str(error) else "")
                raise DownloadError(
                    f"{spec.file_name}: the downloaded file failed verification: {error}. It was "
                    f"deleted; nothing was installed.{hint}") from None
            return total, sha256

    def _verify(self, part: Path, spec: ModelFile, total: int,
                server_sha256: Optional[str]) -> Optional[str]:
        size = part.stat().st_size
        if size != total:
            raise IntegrityError(f"{size} bytes received, the server announced {total}")
        check_model_file(part, spec)
        wanted = [(server_sha256, "the one the server reports")]
        if self.verify_sha256 and spec.sha256:
            wanted.insert(0, (spec.sha256, "the published"))
        wanted = [(value, source) for value, source in wanted if value]
        if not wanted:
            return None
        actual = file_sha256(part)
        for value, source in wanted:
            if actual != value:
                raise IntegrityError(f"SHA-256 {actual} differs from {source} {value}")
        return actual

    def _transfer(self, url: str, spec: ModelFile, part: Path) -> Tuple[int, Optional[str]]:
        """Bring ``part`` to the server's full length (from where it stopped).

        Returns (total size, SHA-256 the server reports or None). Raises ``_Retry`` for
        transient trouble, ``DownloadError`` for the rest.
        """
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        linked = _LinkedHeaders()
        opener = urllib.request.build_opener(linked)
        try:
            response = opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416 and have:
                # Nothing left to send: the partial file is (at least) complete.
                _, total = _total_from_content_range(error.headers.get("Content-Range"))
                return (total if total is not None else have), _server_sha256(linked, error.headers)
            if error.code in (408, 425, 429) or error.code >= 500:
                raise _Retry(f"HTTP {error.code} {error.reason}") from None
            if error.code == 404:
                raise DownloadError(
                    f"{spec.file_name} was not found at {url} (HTTP 404). Upstream may have "
                    f"moved it: see {DEFAULT_ENDPOINT}/{spec.repository}.") from None
            if error.code in (401, 403):
                raise DownloadError(
                    f"access to {url} was refused (HTTP {error.code}); check {ENDPOINT_ENV} and "
                    "any proxy in the environment.") from None
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise _Retry(_network_reason(error)) from None

        with response:
            server_sha256 = _server_sha256(linked, response.headers)
            if response.status == 206:
                start, total = _total_from_content_range(response.headers.get("Content-Range"))
                if start != have or total is None:
                    raise _Retry(f"the server answered an unexpected range "
                                 f"{response.headers.get('Content-Range')!r}")
            elif response.status == 200:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if total is None:
                    raise DownloadError(f"{url}: the server did not say how large the file is")
                have = 0  # the server ignored the range: start again
            else:
                raise _Retry(f"unexpected HTTP {response.status}")
            if have > total:
                have = 0  # an old partial file longer than the file now: start again
            _check_free_space(part.parent, total - have, spec.file_name)
            progress = _ByteProgress(self.progress_stream, spec.file_name, total, have)
            try:
                handle = _open_part(part, have)
            except OSError as error:
                raise _disk_error(error, part) from None
            with handle:
                while True:
                    try:
                        block = response.read(self.chunk_size)
                    except (http.client.HTTPException, OSError) as error:
                        _flush(handle, part)
                        raise _Retry(_network_reason(error)) from None
                    if not block:
                        break
                    try:
                        handle.write(block)
                    except OSError as error:
                        raise _disk_error(error, part) from None
                    progress.update(len(block))
                _flush(handle, part)
            progress.finish()
        received = part.stat().st_size
        if received < total:
            raise _Retry(f"the connection closed after {received} of {total} bytes")
        return total, server_sha256


def _server_sha256(linked: _LinkedHeaders, headers) -> Optional[str]:
    return (_sha256_from_etag(linked.headers.get("x-linked-etag"))
            or _sha256_from_etag(headers.get("X-Linked-Etag") if headers is not None else None))


def _network_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason


def _open_part(part: Path, have: int):
    """Open the partial file for appending at byte ``have`` (truncating anything after)."""
    handle = open(part, "r+b" if part.exists() else "wb")
    handle.truncate(have)
    handle.seek(have)
    return handle


def _flush(handle, part: Path) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    except OSError as error:
        raise _disk_error(error, part) from None


def _disk_error(error: OSError, part: Path) -> DownloadError:
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DownloadError(
            f"the disk is full while writing {part}. Free some space and run the same command "
            "again: the download resumes where it stopped.")
    return DownloadError(f"cannot write {part}: {error.strerror or error}")


def _check_free_space(folder: Path, needed: int, name: str) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # unknown: the write itself will tell
    if needed + _DISK_MARGIN_BYTES > free:
        raise DownloadError(
            f"not enough disk space for {name} in {folder}: {needed / _MIB:.1f} MiB still to "
            f"download, {free / _MIB:.1f} MiB free. Free some space or choose another --dest.")


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _FolderLock:
    """Refuse a second download into the same folder at the same time (POSIX ``flock`` on the
    folder; no lock file is left behind). Where that is unavailable it does nothing."""

    def __init__(self, folder: Path):
        self.folder, self.fd = folder, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        try:
            self.fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise DownloadError(
                f"another `ld-portrait models download` is writing into {self.folder}; wait for "
                "it to finish.") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None
