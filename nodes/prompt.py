"""Prompt node: a template or shipped preset + index + seed -> prompt, negative, attributes, seed.

Thin adapter over :mod:`..prompting`. Wildcard files are looked up in the user's folders
first, then in the shipped vocabulary, so a user file replaces a shipped list of the same
name:

1. every folder in the environment variable ``LDP_WILDCARD_DIRS`` (``os.pathsep``-separated;
   handy for headless servers),
2. ``<ComfyUI user folder>/ld_portrait_wildcards`` and
   ``<ComfyUI input folder>/ld_portrait_wildcards``, when the host is present and they exist
   (``folder_paths`` is looked up through :mod:`._host` when needed, never at module import),
3. the shipped ``prompting/presets/wildcards``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from ._host import folder_paths
from ._schema import Output, choice, comfy_node, node_mappings, text, whole_number

CATEGORY = "LD-Portrait/prompt"
CUSTOM = "custom"
USER_WILDCARD_FOLDER = "ld_portrait_wildcards"
NODE_MODES = ("enumerate", "random", "sequential")
MAX_INT = 0xFFFFFFFFFFFFFFFF


def user_wildcard_dirs() -> tuple[Path, ...]:
    """Existing user wildcard folders, in lookup order (see the module documentation)."""
    candidates = [Path(part).expanduser() for part in os.environ.get("LDP_WILDCARD_DIRS", "").split(os.pathsep)
                  if part.strip()]
    host = folder_paths()
    if host is not None:
        for getter in ("get_user_directory", "get_input_directory"):
            locate = getattr(host, getter, None)
            if locate is None:  # get_user_directory is missing on old hosts
                continue
            try:
                candidates.append(Path(locate()) / USER_WILDCARD_FOLDER)
            except Exception:  # a misconfigured host folder must not break prompting
                continue
    unique = []
    for directory in candidates:
        if directory.is_dir() and directory not in unique:
            unique.append(directory)
    return tuple(unique)


def wildcard_dirs() -> tuple[Path, ...]:
    """User folders first, then the shipped vocabulary."""
    from ..prompting import SHIPPED_WILDCARD_DIR

    return (*user_wildcard_dirs(), SHIPPED_WILDCARD_DIR)


def wildcard_fingerprint(directories) -> str:
    """Digest of every wildcard file's path, size and modification time: changes when a list
    is edited, added or removed, so the host re-runs the node and the parse cache refreshes."""
    digest = hashlib.blake2b(digest_size=16)
    for directory in directories:
        digest.update(str(directory).encode("utf-8", "surrogateescape") + b"\0")
        try:
            files = sorted(Path(directory).rglob("*.txt"))
        except OSError:
            continue
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            digest.update(f"{file}|{stat.st_size}|{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _parsed(preset: str, text: str, directories: tuple[Path, ...], fingerprint: str):
    # fingerprint is part of the key only so edited wildcard files are parsed again.
    from ..prompting import Template, preset_path

    if preset == CUSTOM:
        return Template.parse(text, wildcard_dirs=directories, name="template")
    return Template.from_file(preset_path(preset), wildcard_dirs=directories, name=f"{preset}.txt")


def check_encodable(text: str, what: str = "template") -> str:
    """Return ``text`` when it can be encoded as UTF-8; else a ValueError naming the line and
    column of the first lone surrogate (half of a UTF-16 pair, left by a broken paste or an
    API client), instead of a UnicodeEncodeError deep in the text encoder or the JSON writer."""
    for offset, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            line = text.count("\n", 0, offset) + 1
            column = offset - (text.rfind("\n", 0, offset) + 1) + 1
            raise ValueError(
                f"{what} has an invalid character at line {line}, column {column}: "
                f"U+{ord(char):04X} is half of a UTF-16 surrogate pair, not a character. "
                "Delete it and type or paste that text again.")
    return text


def build_template(preset: str, template: str = ""):
    """The Template the node uses: a shipped preset, or the custom text when preset is 'custom'."""
    from ..prompting import list_presets

    presets = list_presets()
    if preset != CUSTOM and preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose one of {presets + [CUSTOM]}.")
    if preset == CUSTOM and not str(template).strip():
        raise ValueError("preset is 'custom' but the template text is empty: write a template or "
                         "choose a shipped preset.")
    if preset == CUSTOM:
        check_encodable(str(template))
    directories = wildcard_dirs()
    return _parsed(preset, str(template) if preset == CUSTOM else "", directories,
                   wildcard_fingerprint(directories))


def _default_template_text() -> str:
    from ..prompting import DEFAULT_PRESET, preset_text

    try:
        return preset_text(DEFAULT_PRESET)
    except (OSError, ValueError):  # a broken install still shows the node
        return "a portrait photo of a {age: young|middle-aged|senior} {gender: woman|man}, high quality"


@comfy_node
class LDPPromptTemplate:
    DISPLAY_NAME = "Prompt Template (LD-Portrait)"
    DESCRIPTION = (
        "Make one prompt per sample index from a template: choices {a|b}, weights {3::a|b}, "
        "recorded slots {hair_color: black|brown}, wildcard lists __name__ (text files, one "
        "option per line), # comments and a [negative] section. 'enumerate' walks every "
        "combination once without repeats (index 0, 1, 2, ... give different prompts, spread "
        "over the whole space); 'random' draws by weight from (seed, index). The same index, "
        "seed and template give the same prompt on every machine. The shipped 'ld_portrait' "
        "preset varies age, ethnicity, gender, hair (style, length, colour, flyaway strands), "
        "clothing, accessories, expression, pose, framing and lighting: billions of distinct "
        "prompts. Your own wildcard files go in ld_portrait_wildcards/ in the ComfyUI user "
        "or input folder (they replace shipped lists of the same name).")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    OUTPUTS = (
        Output("STRING", "prompt", "Positive prompt text (connect to CLIP Text Encode)."),
        Output("STRING", "negative", "Negative prompt from the template's [negative] section (empty if it "
                                     "has none)."),
        Output("STRING", "attributes", (
            "JSON object: slot name -> chosen text (null when an empty '~' option was chosen); slots in "
            "options not chosen are absent. Store it with the sample.")),
        Output("INT", "seed", (
            "Per-sample sampler seed derived from (seed, index): blake2b of 'seed:index', 53 bits; "
            "different for every index, the same on every machine. Connect to the sampler's seed.")),
        Output("INT", "index", "The index input, passed through (wire it to the dataset writer's id)."),
    )

    @classmethod
    def inputs(cls):
        from ..prompting import DEFAULT_PRESET, list_presets

        presets = list_presets()
        default = DEFAULT_PRESET if DEFAULT_PRESET in presets else CUSTOM
        return [
            choice("preset", presets + [CUSTOM], default, (
                "A shipped template, or 'custom' to use the template text below. With a shipped "
                "preset the template text is ignored.")),
            text("template", (
                "Template used when preset is 'custom' (it starts as a copy of the ld_portrait "
                "preset). {a|b} choice, {3::a|b} weights, {name: a|b} records the choice in "
                "attributes, ~ empty option, __name__ wildcard file, # comment, \\ escapes, a line "
                "[negative] starts the negative prompt."), default=_default_template_text(), multiline=True),
            whole_number("index", 0, 0, MAX_INT, (
                "Sample index. Set the control below to 'increment' to make one new prompt per "
                "queued run. enumerate/sequential wrap around after the last combination."), step=1,
                control_after_generate=True),
            whole_number("seed", 0, 0, MAX_INT, (
                "Base seed. random mode draws the choices from (seed, index); every mode derives the "
                "seed output from it. Keep it fixed for a dataset run.")),
            choice("mode", NODE_MODES, "enumerate", (
                "enumerate: every combination once, no repeats, consecutive indices spread over the "
                "whole space; weights ignored (options are as frequent as their combinations). "
                "random: weighted draw from (seed, index); repeats are possible but rare in a large "
                "space. sequential: combinations in reading order (small templates).")),
        ]

    @classmethod
    def IS_CHANGED(cls, preset, template, index, seed, mode):
        # Inputs are compared by the host anyway; this adds the wildcard files' state, so
        # editing a list makes the node run again.
        return wildcard_fingerprint(wildcard_dirs())

    def render(self, preset, template, index, seed, mode):
        if mode not in NODE_MODES:
            raise ValueError(f"mode must be one of {NODE_MODES}, got {mode!r}.")
        parsed = build_template(preset, template)  # TemplateError is a ValueError with line/column
        result = parsed.render(int(index), seed=int(seed), mode=mode)
        return (result.prompt, result.negative, json.dumps(result.attributes), result.seed, int(index))


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(LDPPromptTemplate)

__all__ = ["LDPPromptTemplate", "build_template", "check_encodable", "user_wildcard_dirs", "wildcard_dirs",
           "wildcard_fingerprint", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
