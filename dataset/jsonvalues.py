"""JSON in and out of the dataset: meta values, manifest lines, and the nodes' JSON text inputs.

:func:`to_jsonable` turns numpy values, paths and tuples into plain JSON (NaN/inf become null);
:func:`manifest_entry` is the one definition of a manifest line; :func:`parse_json_input`
reads a node's JSON text socket with errors that name the input, including JSON nested
deeper than :data:`MAX_JSON_DEPTH` (which would otherwise end in a RecursionError).
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Mapping

__all__ = ["to_jsonable", "dumps_line", "manifest_entry", "parse_json_input", "models_value",
           "json_depth", "MAX_JSON_DEPTH"]

#: Deepest nesting accepted in a JSON text input (attributes, verdict, stats are 1-3 deep).
MAX_JSON_DEPTH = 32


def to_jsonable(value: Any, where: str = "meta") -> Any:
    """Plain-JSON copy of ``value``: numpy scalars/arrays, Paths and tuples converted.

    Non-finite floats become ``None`` because strict JSON has no NaN/inf (a measure that is
    undefined for a sample, e.g. a ratio over an empty matte, is recorded as null).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    # numpy only when loaded: without it no value can be a numpy object (and the command line
    # that imports this module starts without numpy).
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        value = value.item()  # a numpy scalar -> the Python bool, int or float
        if isinstance(value, bool):
            return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if np is not None and isinstance(value, np.ndarray):
        if value.size > 4096:
            raise ValueError(f"{where} is an array of {value.size} values; store images as files, "
                             "not in meta.")
        return to_jsonable(value.tolist(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_json") and callable(value.to_json):
        converted = value.to_json()
        if isinstance(converted, str):
            converted = json.loads(converted)
        return to_jsonable(converted, where)
    raise ValueError(f"{where} has a value of type {type(value).__name__} that cannot be stored "
                     "as JSON; convert it to numbers, strings, lists or dicts.")


def dumps_line(obj: Mapping) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            + "\n").encode("utf-8")


def manifest_entry(meta: Mapping) -> dict:
    """The manifest line (as a dict) for an accepted sample's meta.

    It holds what a training data loader needs without opening meta files: the id, the file
    paths relative to the root, the size, and, when the meta has them, the seed, prompt,
    source file and attributes. :func:`rebuild_manifest` uses the same function, so a rebuilt
    manifest equals an appended one line for line (up to order).
    """
    files = meta.get("files", {})
    entry = {"id": meta["id"]}
    for kind in ("fg", "alpha", "raw_alpha", "error_map"):
        if kind in files:
            entry[kind] = files[kind]
    entry["width"] = meta.get("width")
    entry["height"] = meta.get("height")
    for key in ("seed", "prompt", "source_file", "attributes"):
        if meta.get(key) is not None:
            entry[key] = meta[key]
    return entry




def json_depth(value, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[1]`` is 1), counted without
    recursion and stopping once it exceeds ``limit`` (then ``limit + 1`` is returned)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return limit + 1
        stack.extend((child, depth) for child in children)
    return deepest


def _too_deep(name: str) -> ValueError:
    return ValueError(
        f"{name} is nested more than {MAX_JSON_DEPTH} levels deep; attributes, verdicts and "
        "statistics are flat objects or lists of them. Connect the matching output of the "
        "LD-Portrait node or clear the input.")


def parse_json_input(text, name: str, *, kinds=(dict, list), empty=None):
    """Parse a JSON text input (a node's STRING socket); ``empty`` for blank or None.

    Parameters
    ----------
    text : str, dict, list or None
        JSON text; an already parsed value of one of ``kinds`` (a script calling the node)
        is returned as it is.
    name : str
        Input name used in error messages.
    kinds : tuple of type
        Accepted parsed types (``dict`` and/or ``list``).
    empty : any
        Returned for None or white space only.

    Raises
    ------
    ValueError
        Not valid JSON, not one of ``kinds``, or nested deeper than :data:`MAX_JSON_DEPTH`;
        the message names the input and, for bad JSON, where the parser stopped.
    """
    if text is None:
        return empty
    if not isinstance(text, str):
        if isinstance(text, kinds):
            if json_depth(text) > MAX_JSON_DEPTH:
                raise _too_deep(name)
            return text
        raise ValueError(f"{name} must be a JSON string, got {type(text).__name__}.")
    if not text.strip():
        return empty
    try:
        value = json.loads(text)
    except RecursionError:  # the parser recurses once per level
        raise _too_deep(name) from None
    except ValueError as error:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(
            f"{name} is not valid JSON ({error}): {shown!r}. Connect the matching output of the "
            "LD-Portrait node (for attributes: Prompt Template's 'attributes') or clear it."
        ) from None
    if not isinstance(value, kinds):
        names = " or ".join("a JSON object" if k is dict else "a JSON list" for k in kinds)
        raise ValueError(f"{name} must be {names}, got {type(value).__name__}.")
    if json_depth(value) > MAX_JSON_DEPTH:
        raise _too_deep(name)
    return value


def models_value(text):
    """Meta value for a free-text ``models`` description.

    Returns None for None or blank text, the parsed value when the text is a JSON object or
    list (nested at most :data:`MAX_JSON_DEPTH` deep), and otherwise the text with surrounding
    white space removed.
    """
    if text is None or not str(text).strip():
        return None
    text = str(text)
    if text.lstrip()[:1] in "{[":
        try:
            value = json.loads(text)
        except RecursionError:
            raise _too_deep("models") from None
        except ValueError:
            pass
        else:
            if json_depth(value) > MAX_JSON_DEPTH:
                raise _too_deep("models")
            return value
    return text.strip()
