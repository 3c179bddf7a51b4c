"""Sample ids and dataset folder names: what may become a file or folder name, and how.

Ids become file names (``fg/<id>.png``) on Linux, macOS and Windows, so only portable
characters are allowed and nothing that could leave its folder; dataset names become one
folder inside an output folder.
"""
from __future__ import annotations

import hashlib
import numbers
import os
import re
from pathlib import Path

from .layout import MAX_DATASET_NAME_LENGTH, MAX_ID_LENGTH, DatasetError, SampleIdError

__all__ = ["validate_id", "index_id", "safe_id_from_filename", "name_digest", "plain_png_stem", "validate_dataset_name",
           "dataset_root_in"]

# Portable file-name characters only: ids become file names on Linux, macOS and Windows.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")
# Names Windows refuses as file names whatever the extension.
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {
    f"lpt{i}" for i in range(1, 10)}


def validate_id(sample_id) -> str:
    """Return ``sample_id`` if it is a safe sample id, else raise :class:`SampleIdError`.

    A safe id is a non-empty string of at most :data:`MAX_ID_LENGTH` characters from
    ``A-Z a-z 0-9 _ . -`` that does not start with ``.`` or ``-`` and is not a name Windows
    reserves (``CON``, ``NUL``, ``COM1`` ...). This rules out path separators, ``..``,
    absolute paths, NUL bytes and hidden files, so ``<folder>/<id>.png`` always stays inside
    ``<folder>``.
    """
    if not isinstance(sample_id, str):
        raise SampleIdError(f"sample id must be a string, got {type(sample_id).__name__}.")
    shown = repr(sample_id) if len(sample_id) <= 60 else repr(sample_id[:57] + "...")
    if not sample_id:
        raise SampleIdError("sample id is empty; use a name such as '000123'.")
    if "\x00" in sample_id:
        raise SampleIdError(f"sample id {shown} contains a NUL byte.")
    if "/" in sample_id or "\\" in sample_id or os.sep in sample_id:
        raise SampleIdError(
            f"sample id {shown} contains a path separator; ids are plain file names, not paths.")
    if len(sample_id) > MAX_ID_LENGTH:
        raise SampleIdError(
            f"sample id {shown} is {len(sample_id)} characters long; the limit is {MAX_ID_LENGTH}.")
    if sample_id[0] in ".-":
        raise SampleIdError(
            f"sample id {shown} starts with {sample_id[0]!r}; ids may not be hidden files, '..' "
            "or look like options.")
    if not _ID_PATTERN.match(sample_id):
        raise SampleIdError(
            f"sample id {shown} has characters outside A-Z a-z 0-9 _ . -; use "
            "safe_id_from_filename() to derive an id from an arbitrary name.")
    if sample_id.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise SampleIdError(f"sample id {shown} is a reserved device name on Windows.")
    return sample_id


def index_id(index: int, width: int = 6) -> str:
    """Sample id for a generation index: ``index_id(123) == '000123'`` (more digits if needed)."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):  # numpy integers included
        raise ValueError(f"index must be an integer, got {type(index).__name__}.")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}.")
    return f"{int(index):0{width}d}"


def name_digest(name) -> str:
    """The first 8 hex digits of the SHA-1 of ``name`` (undecodable bytes escaped)."""
    return hashlib.sha1(str(name).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def plain_png_stem(name) -> str | None:
    """The stem of ``name`` when it ends in exactly ``.png`` and the stem is a safe id as it is
    (any letter case), else None."""
    stem, suffix = os.path.splitext(os.path.basename(str(name).replace("\\", "/")))
    try:
        return stem if suffix == ".png" and validate_id(stem) == stem else None
    except SampleIdError:
        return None


def safe_id_from_filename(name: str) -> str:
    """Derive a safe, stable sample id from a source file name.

    The id is a function of ``name`` alone (never of the other files in a folder). The stem
    (name without its last suffix) is kept when it already is a safe id in lower case and the
    suffix is exactly ``.png``. A safe stem with capitals gets ``-`` plus the first 8 hex digits
    of the SHA-1 of the name appended, so ids never differ only by letter case (``A.png`` and
    ``a.png`` stay apart on macOS and Windows file systems too). Otherwise unsafe characters are
    replaced by ``_``, leading dots and dashes are dropped, the result is shortened if needed,
    and the same digest is appended, so that different names never map to the same id by
    sanitising (``'a b.png'`` and ``'a_b.png'`` stay apart).

    Examples
    --------
    >>> safe_id_from_filename("portrait_01.png")
    'portrait_01'
    >>> safe_id_from_filename("../evil name.png")  # doctest: +ELLIPSIS
    'evil_name-...'
    """
    base = os.path.basename(str(name).replace("\\", "/"))
    stem, suffix = os.path.splitext(base)
    digest = name_digest(name)
    if plain_png_stem(name) is not None:
        if stem == stem.lower():
            return stem
        return validate_id(f"{stem[: MAX_ID_LENGTH - 9]}-{digest}")
    cleaned = _UNSAFE_CHARS.sub("_", stem).lstrip(".-_")
    cleaned = cleaned[: MAX_ID_LENGTH - 9].rstrip(".") or "sample"
    candidate = f"{cleaned}-{digest}"
    if candidate.split(".")[0].lower() in _WINDOWS_RESERVED:
        candidate = f"_{candidate}"
    return validate_id(candidate)


_DATASET_NAME_PATTERN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_. \-]*[A-Za-z0-9_\-])?\Z")


def validate_dataset_name(name) -> str:
    """Return ``name`` (surrounding white space removed) if it is a safe dataset folder name.

    A dataset name becomes one folder directly inside an output folder (ComfyUI's
    ``output/``), so it must be a plain folder name: 1 to :data:`MAX_DATASET_NAME_LENGTH`
    characters from ``A-Z a-z 0-9 _ . -`` and inner spaces, starting with a letter, digit or
    ``_``, not ending with ``.`` or a space (Windows drops those), and not a name Windows
    reserves. That refuses ``..``, ``../x``, absolute paths (``/x``, ``C:\\x``), separators,
    NUL bytes, hidden folders and over-long names, each with a message that says why.

    Raises
    ------
    ValueError
        The message names the problem and what to type instead.
    """
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be text, got {type(name).__name__}.")
    text = name.strip()
    shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
    hint = "use a plain folder name such as 'ld_portrait_20k'"
    if not text:
        raise ValueError(f"dataset name is empty; {hint}.")
    if "\x00" in text:
        raise ValueError(f"dataset name {shown} contains a NUL byte; {hint}.")
    if "/" in text or "\\" in text or os.sep in text or (os.altsep and os.altsep in text):
        raise ValueError(
            f"dataset name {shown} contains a path separator; it names one folder inside the "
            f"output folder, not a path: {hint}.")
    if text in (".", "..") or text.startswith("."):
        raise ValueError(f"dataset name {shown} starts with '.'; {hint}.")
    if len(text) > MAX_DATASET_NAME_LENGTH:
        raise ValueError(f"dataset name {shown} is {len(text)} characters long; the limit is "
                         f"{MAX_DATASET_NAME_LENGTH}.")
    if not _DATASET_NAME_PATTERN.match(text):
        raise ValueError(
            f"dataset name {shown} has characters outside A-Z a-z 0-9 _ . - and inner spaces "
            f"(or starts/ends with one that is not allowed there, such as ':' of 'C:'); {hint}.")
    if text.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        raise ValueError(f"dataset name {shown} is a reserved device name on Windows; {hint}.")
    return text


def dataset_root_in(output_dir, name) -> Path:
    """The dataset root ``<output_dir>/<name>`` after checking that it stays inside.

    ``name`` is checked with :func:`validate_dataset_name`. When the folder already exists
    and resolves outside ``output_dir`` (a symlink), it is refused: nothing is ever written
    outside the output folder. Nothing is created here.

    Raises
    ------
    ValueError
        Unsafe name.
    DatasetError
        ``output_dir`` is not a folder, or the root escapes it.
    """
    name = validate_dataset_name(name)
    output = Path(output_dir).expanduser()
    if output.exists() and not output.is_dir():
        raise DatasetError(f"output folder {output} is not a folder.")
    base = output.resolve()
    root = base / name
    if root.exists() or root.is_symlink():
        resolved = root.resolve()
        if resolved.parent != base:
            raise DatasetError(
                f"dataset folder {root} resolves to {resolved}, outside the output folder "
                f"{base} (a symlink?); refusing to write there. Point the host's output "
                "folder at the other disk instead, or remove the link.")
    return root
