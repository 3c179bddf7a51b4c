"""Prompt templates: a small language that maps an index to a varied, reproducible prompt.

Pure Python (standard library only); no host import. The LD-Portrait-20K recipe needs tens of
thousands of different, carefully worded portrait prompts, each reproducible from its sample
index so a dataset can be regenerated, resumed or extended.

Syntax
------
``text``
    Literal text. Newlines and runs of spaces become one space; see :func:`clean_prompt`.
``{a|b|c}``
    A choice: exactly one option is used. Options may contain any syntax, nested choices
    included. Spaces right inside ``{``, ``|`` and ``}`` are ignored: ``{ a | b }`` is
    ``{a|b}``; put spaces outside the braces. A single option ``{a}`` is allowed.
``{3::a|b|0.5::c}``
    Weights: a positive decimal number and ``::`` before an option (default 1). Random mode
    picks options in proportion to their weights; enumerate mode ignores them.
``{name: a|b}``
    A named slot (``name`` = letters, digits, ``_``, not starting with a digit, then one
    colon). The chosen option's text is recorded in ``attributes[name]``.
``~``
    An option that is just ``~`` renders nothing (an optional element): ``{3::~|glasses}``.
    A slot whose option is ``~`` is recorded as ``None``.
``__name__``
    A wildcard: a choice over the lines of ``name.txt`` looked up in the wildcard folders
    (first folder that has it wins; ``__sub/name__`` looks in subfolders). Each line is one
    option; lines may start with a weight (``3:: curly hair``) and may use any syntax,
    other wildcards included. Blank lines and comments are skipped.
``# comment``
    From ``#`` to the end of the line is ignored (templates and wildcard files).
``\\`` at the end of a line
    Continues the line (the break becomes one space); needed in wildcard files, where a
    line is one option. In a template a plain line break is already a space.
``\\{ \\} \\| \\# \\\\ \\_ \\: \\~``
    The character itself.
``[negative]``
    A line holding only ``[negative]`` starts the negative prompt; it may use all the syntax
    above, and slots of the positive part.

Slots: a slot name may occur several times. Occurrences in different options of one choice
(they never meet in one prompt) are independent and may differ. Otherwise the occurrences
must be identical and one of them must sit outside every choice; that one decides, the
others repeat its value. Anything else is an error ("conflicting meaning").

Errors: :class:`TemplateError` (a ``ValueError``) names the file, line and column and shows
the line with a caret: unbalanced braces, empty or duplicate options, bad weights, unknown
escapes, unknown wildcards (with suggestions), wildcard recursion, conflicting slots.

Index -> prompt
---------------
The template defines a finite set of combinations (one option per active choice);
:attr:`Template.total` (:func:`count_combinations`) counts them exactly (Python int, no
limit). ``render(index, seed=..., mode=...)``:

``"sequential"``
    Combination number ``c = index mod total`` decoded in mixed radix: in a sequence of parts
    the first part is the least significant digit; in a choice, option ``k`` owns the numbers
    after those of options ``0..k-1`` (each option owns as many numbers as it has
    combinations). Small templates come out in reading order: ``{a|b} {x|y}`` ->
    ``a x, b x, a y, b y``.
``"enumerate"`` (default)
    The same decoding of ``c = (index mod total) * stride mod total``, where ``stride`` is
    the integer nearest below ``total * (sqrt 5 - 1) / 2`` raised to the first value coprime
    with ``total`` (:func:`spread_stride`). Multiplying by a number coprime with ``total`` is a
    bijection, so indices ``0..total-1`` still give every combination exactly once, but
    consecutive indices land far apart (a golden-ratio walk): the first few thousand indices
    are spread over the whole space instead of varying only the first few choices. Indices
    past ``total`` wrap around (``index mod total``). Weights are ignored: an option is as
    frequent as its share of the combinations (balance big branches when that matters).
``"random"``
    Each choice met, in reading order, takes the next 64-bit number ``u`` of a counter-based
    stream (little-endian words of BLAKE2b-512 of ``"<seed>:<index>:<block>"``, personal
    ``ldp-prompt-v1``) and picks the option whose cumulative integer weight first exceeds
    ``(u * W) >> 64`` (``W`` = total weight after scaling to integers); repeats of a slot
    take no number.
    Same template, index and seed -> same prompt on every machine and Python version
    (no ``hash()``, no ``random`` module, no floats). Prompts may repeat.

In enumerate and sequential mode, different indices below ``total`` give different
combinations. Combinations give different text as long as no two ways of choosing spell the
same words; duplicate options within one choice (or one wildcard file) are rejected to make
this hold in practice.

The ``seed`` of a :class:`RenderedPrompt` is :func:`sample_seed(seed, index)
<sample_seed>`, a per-sample seed for the sampler (53 bits, exact in JSON and JavaScript).
"""
from __future__ import annotations

import bisect
import difflib
import hashlib
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MODES",
    "TemplateError",
    "RenderedPrompt",
    "Template",
    "count_combinations",
    "clean_prompt",
    "sample_seed",
    "spread_stride",
]

from .syntax import (MAX_NESTING, WILDCARD_SUFFIX, _REF, _SEQ, _TEXT,  # the parser and its tree
                     TemplateError, _available_wildcards, _check_duplicates, _Choice, _find_wildcard,
                     _key, _Parser, _read_text, _Ref, _Seq, _Source, _split_sections, _trimmed)

MODES = ("enumerate", "sequential", "random")
MAX_SLOT_OCCURRENCES = 100_000  # guard against exponential wildcard fan-out in the slot check
SEED_BITS = 53
_PROMPT_PERSON = b"ldp-prompt-v1"
_SEED_PERSON = b"ldp-sample-seed"


# --- the template ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedPrompt:
    """One prompt made from a template.

    Attributes
    ----------
    prompt, negative : str
        Cleaned positive and negative prompt text.
    attributes : dict[str, str | None]
        Slot name -> chosen text (``None`` for an empty ``~`` option), in the order met.
    seed : int
        Per-sample sampler seed, ``sample_seed(base_seed, index)``, 0 .. 2**53 - 1.
    index : int
        The index asked for (not wrapped).
    mode : str
        ``"enumerate"``, ``"sequential"`` or ``"random"``.
    base_seed : int
        The seed given to :meth:`Template.render`.
    combination : int or None
        The combination number decoded (enumerate/sequential), ``None`` in random mode.
    """

    prompt: str
    negative: str
    attributes: dict = field(default_factory=dict)
    seed: int = 0
    index: int = 0
    mode: str = "enumerate"
    base_seed: int = 0
    combination: int | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable form (for dataset metadata)."""
        return {
            "prompt": self.prompt, "negative": self.negative, "attributes": dict(self.attributes),
            "seed": self.seed, "index": self.index, "mode": self.mode,
            "base_seed": self.base_seed, "combination": self.combination,
        }


class _SlotValue:
    """Placeholder for a slot's value, filled after the whole prompt is decided."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _Stream:
    """Counter-based stream of 64-bit numbers: BLAKE2b("<seed>:<index>:<block>")."""

    def __init__(self, seed: int, index: int):
        self.prefix = f"{seed}:{index}:".encode("ascii")
        self.block = 0
        self.buffer: list[int] = []

    def next(self) -> int:
        if not self.buffer:
            digest = hashlib.blake2b(self.prefix + str(self.block).encode("ascii"), digest_size=64,
                                     person=_PROMPT_PERSON).digest()
            self.buffer = list(reversed(struct.unpack("<8Q", digest)))
            self.block += 1
        return self.buffer.pop()


class Template:
    """A parsed, checked template. Build it with :meth:`parse` or :meth:`from_file`.

    Attributes
    ----------
    name : str
        Source name used in messages.
    text : str
        The template text.
    total : int
        Exact number of combinations (:func:`count_combinations`).
    slots : tuple[str, ...]
        Slot names in the order they first appear (wildcards included).
    wildcards : dict[str, Path]
        Wildcard name -> file used.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use Template.parse(text, ...) or Template.from_file(path, ...)")

    @classmethod
    def parse(cls, text: str, *, wildcard_dirs=(), name: str = "<template>") -> "Template":
        """Parse and check a template.

        Parameters
        ----------
        text : str
            Template text (see the module documentation for the syntax).
        wildcard_dirs : iterable of str or Path
            Folders searched in order for ``name.txt`` when ``__name__`` is used.
        name : str
            Shown in error messages.

        Raises
        ------
        TemplateError
            Syntax errors, unknown wildcards, wildcard recursion, conflicting slots.
        """
        if not isinstance(text, str):
            raise TypeError(f"template text must be a str, got {type(text).__name__}")
        text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self = object.__new__(cls)
        self.name = str(name)
        self.text = text
        if isinstance(wildcard_dirs, (str, bytes, os.PathLike)):
            # One folder, not a sequence of one-letter folders.
            wildcard_dirs = (wildcard_dirs,)
        self._dirs = tuple(Path(os.fsdecode(directory)) for directory in wildcard_dirs)
        source = _Source(self.name, text)
        positive_range, negative_range = _split_sections(source)
        positive = _Parser(source, *positive_range)
        self._positive = _trimmed(positive.parse_sequence(""))
        if negative_range is None:
            self._negative = _Seq(())
        else:
            self._negative = _trimmed(_Parser(source, *negative_range).parse_sequence(""))
        self._root = _Seq((self._positive, self._negative))
        self.wildcards: dict[str, Path] = {}
        self._resolve_wildcards()
        self.slots = self._check_slots()
        self.total = self._count(self._root)
        self._stride = spread_stride(self.total)
        return self

    @classmethod
    def from_file(cls, path, *, wildcard_dirs=(), name: str | None = None) -> "Template":
        """Parse a template file (UTF-8)."""
        path = Path(path)
        try:
            text = _read_text(path)
        except (OSError, UnicodeDecodeError) as error:
            raise TemplateError(f"cannot read template file: {error}", source=str(path)) from None
        return cls.parse(text, wildcard_dirs=wildcard_dirs, name=str(path) if name is None else name)

    def __repr__(self) -> str:
        return f"<Template {self.name!r}: {self.total} combinations, slots {list(self.slots)}>"

    # -- linking ---------------------------------------------------------------------------

    def _resolve_wildcards(self) -> None:
        loaded: dict[str, _Choice] = {}
        visiting: list[str] = []

        def visit(node, depth):
            if isinstance(node, _Seq):
                for item in node.items:
                    visit(item, depth)
            elif isinstance(node, _Choice):
                for option in node.options:
                    if option.body is not None:
                        visit(option.body, depth)
            elif isinstance(node, _Ref):
                if node.name in visiting:
                    chain = visiting[visiting.index(node.name):] + [node.name]
                    raise node.source.error(
                        "wildcard recursion: " + " -> ".join(f"__{name}__" for name in chain)
                        + "; a wildcard may not use itself, directly or through others", node.offset)
                if node.name not in loaded:
                    if depth >= MAX_NESTING:
                        raise node.source.error(f"wildcards nested more than {MAX_NESTING} deep", node.offset)
                    choice = self._load_wildcard(node)
                    visiting.append(node.name)
                    visit(choice, depth + 1)
                    visiting.pop()
                    loaded[node.name] = choice
                node.target = loaded[node.name]

        visit(self._root, 0)

    def _load_wildcard(self, ref: _Ref) -> _Choice:
        path = _find_wildcard(ref.name, self._dirs)
        if path is None:
            available = _available_wildcards(self._dirs)
            close = difflib.get_close_matches(ref.name, available, n=3)
            hint = f" Did you mean {', '.join(f'__{name}__' for name in close)}?" if close else ""
            where = ", ".join(str(directory) for directory in self._dirs) or "(no wildcard folders given)"
            listing = ", ".join(available[:30]) + (" ..." if len(available) > 30 else "")
            raise ref.source.error(
                f"unknown wildcard '__{ref.name}__': no {ref.name}{WILDCARD_SUFFIX} in {where}."
                f"{hint} Available: {listing or 'none'}", ref.offset)
        try:
            text = _read_text(path)
        except (OSError, UnicodeDecodeError) as error:
            raise ref.source.error(f"cannot read wildcard file {path}: {error}", ref.offset) from None
        source = _Source(str(path), text)
        options = _Parser(source, 0, len(text)).parse_lines()
        if not options:
            raise ref.source.error(f"wildcard '__{ref.name}__' ({path}) has no entries", ref.offset)
        _check_duplicates(options, source, "entry")
        self.wildcards[ref.name] = path
        return _Choice(None, options, source, 0, wildcard=ref.name)

    def _check_slots(self) -> tuple[str, ...]:
        """Apply the slot rules; record which slot occurrences repeat an owner's value."""
        has_slot: dict[int, bool] = {}

        def contains_slot(node) -> bool:
            key = id(node)
            if key not in has_slot:
                if isinstance(node, _Seq):
                    has_slot[key] = any(contains_slot(item) for item in node.items)
                elif isinstance(node, _Choice):
                    has_slot[key] = node.slot is not None or any(
                        option.body is not None and contains_slot(option.body) for option in node.options)
                elif isinstance(node, _Ref):
                    has_slot[key] = contains_slot(node.target)
                else:
                    has_slot[key] = False
            return has_slot[key]

        # Owners: slots outside every choice (direct parts of the positive or negative text).
        owners: dict[str, _Choice] = {}
        for section in (self._positive, self._negative):
            for item in section.items:
                if isinstance(item, _Choice) and item.slot is not None:
                    owner = owners.setdefault(item.slot, item)
                    if owner is not item:
                        self._mark_reference(item, owner)

        occurrences: dict[str, list] = {}
        order: list[str] = []
        visits = 0

        def walk(node, path):
            nonlocal visits
            if not contains_slot(node):
                return
            visits += 1
            if visits > MAX_SLOT_OCCURRENCES:
                raise TemplateError("template too complex to check its slots (wildcards using "
                                     "slot-bearing wildcards many times over)", source=self.name)
            if isinstance(node, _Seq):
                for position, item in enumerate(node.items):
                    walk(item, path + (("s", position),))
            elif isinstance(node, _Ref):
                walk(node.target, path)
            elif isinstance(node, _Choice):
                if node.slot is not None:
                    if node.slot not in order:
                        order.append(node.slot)
                    owner = owners.get(node.slot)
                    if owner is not None:
                        if node is not owner:
                            self._mark_reference(node, owner)
                            return  # a repeat: its options are never used
                    else:
                        occurrences.setdefault(node.slot, []).append((path, node))
                for position, option in enumerate(node.options):
                    if option.body is not None:
                        walk(option.body, path + (("c", position),))

        walk(self._root, ())
        for name, found in occurrences.items():
            for later in range(1, len(found)):
                for earlier in range(later):
                    path_a, node_a = found[earlier]
                    path_b, node_b = found[later]
                    if _exclusive(path_a, path_b):
                        continue
                    first = node_a.source.where(node_a.offset)
                    if _key(node_a) != _key(node_b):
                        raise node_b.source.error(
                            f"slot '{name}' is defined again with different options (first at "
                            f"{first}) and both can appear in one prompt: conflicting meaning; "
                            "rename one of them", node_b.offset)
                    raise node_b.source.error(
                        f"slot '{name}' would be chosen twice in one prompt (also at {first}); to "
                        "repeat one value, write the slot once outside every choice and repeat "
                        "it identically", node_b.offset)
        return tuple(order)

    def _mark_reference(self, node: _Choice, owner: _Choice) -> None:
        if _key(node) != _key(owner):
            raise node.source.error(
                f"slot '{node.slot}' is defined again with different options (first at "
                f"{owner.source.where(owner.offset)}): conflicting meaning; repeat it identically "
                "to reuse its value, or rename it", node.offset)
        node.is_repeat = True

    # -- counting --------------------------------------------------------------------------

    def _count(self, node) -> int:
        """Exact number of combinations below ``node`` (memoised on the node)."""
        if node.size is not None:
            return node.size
        kind = node.kind
        if kind == _SEQ:
            total = 1
            for item in node.items:
                total *= self._count(item)
        elif kind == _REF:
            total = self._count(node.target)
        elif node.is_repeat:
            total = 1
        else:
            cumulative, total = [], 0
            for option in node.options:
                total += 1 if option.body is None else self._count(option.body)
                cumulative.append(total)
            node.cumulative_sizes = cumulative
        node.size = total
        return total

    # -- rendering -------------------------------------------------------------------------

    def combination(self, index: int, mode: str = "enumerate") -> int:
        """The combination number that ``index`` decodes in enumerate or sequential mode."""
        index = _check_count(index, "index")
        wrapped = index % self.total
        if mode == "sequential":
            return wrapped
        if mode == "enumerate":
            return wrapped * self._stride % self.total
        raise ValueError(f"combination() needs mode 'enumerate' or 'sequential', got {mode!r}")

    def render(self, index: int, *, seed: int = 0, mode: str = "enumerate") -> RenderedPrompt:
        """The prompt for ``index``.

        Parameters
        ----------
        index : int
            Sample index, 0 or more. Enumerate/sequential wrap at :attr:`total`.
        seed : int
            0 or more. Random mode's stream seed; in every mode the base of the per-sample
            seed. Enumerate/sequential choices do not depend on it.
        mode : {"enumerate", "sequential", "random"}

        Returns
        -------
        RenderedPrompt
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        index = _check_count(index, "index")
        seed = _check_count(seed, "seed")
        positive, negative, values = [], [], {}
        if mode == "random":
            stream = _Stream(seed, index)
            _draw(self._positive, stream, positive, values)
            _draw(self._negative, stream, negative, values)
            number = None
        else:
            number = self.combination(index, mode)
            rest, digit = divmod(number, self._positive.size)
            _decode(self._positive, digit, positive, values)
            _decode(self._negative, rest, negative, values)
        attributes = {}
        for name, fragments in values.items():
            value = None if fragments is None else clean_prompt(_join(fragments, values))
            attributes[name] = value or None
        return RenderedPrompt(
            prompt=clean_prompt(_join(positive, values)), negative=clean_prompt(_join(negative, values)),
            attributes=attributes, seed=sample_seed(seed, index), index=index, mode=mode,
            base_seed=seed, combination=number)


def _decode(node, number: int, out: list, values: dict) -> None:
    """Mixed-radix decoding: append the text of combination ``number`` of ``node`` to ``out``."""
    kind = node.kind
    if kind == _TEXT:
        out.append(node.text)
    elif kind == _SEQ:
        for item in node.items:  # the first part is the least significant digit
            if item.kind == _TEXT:
                out.append(item.text)
            elif item.size == 1:
                _decode(item, 0, out, values)
            else:
                number, digit = divmod(number, item.size)
                _decode(item, digit, out, values)
    elif kind == _REF:
        _decode(node.target, number, out, values)
    elif node.is_repeat:
        out.append(_SlotValue(node.slot))
    elif node.plain is not None:
        _emit_plain(node, number, out, values)
    else:
        cumulative = node.cumulative_sizes
        position = bisect.bisect_right(cumulative, number)
        body = _open_option(node, position, out, values)
        if body is not None:
            _decode(body[0], number - (cumulative[position - 1] if position else 0), body[1], values)


def _draw(node, stream: "_Stream", out: list, values: dict) -> None:
    """Random mode: one stream number per choice met, scaled to the integer weights."""
    kind = node.kind
    if kind == _TEXT:
        out.append(node.text)
    elif kind == _SEQ:
        for item in node.items:
            if item.kind == _TEXT:
                out.append(item.text)
            else:
                _draw(item, stream, out, values)
    elif kind == _REF:
        _draw(node.target, stream, out, values)
    elif node.is_repeat:
        out.append(_SlotValue(node.slot))
    else:
        ticket = (stream.next() * node.total_weight) >> 64  # uniform in 0 .. total_weight - 1
        position = bisect.bisect_right(node.cumulative_weights, ticket)
        if node.plain is not None:
            _emit_plain(node, position, out, values)
            return
        body = _open_option(node, position, out, values)
        if body is not None:
            _draw(body[0], stream, body[1], values)


def _emit_plain(node: _Choice, position: int, out: list, values: dict) -> None:
    """Option ``position`` of a choice of plain texts (each option is one combination)."""
    text = node.plain[position]
    if node.slot is None:
        if text is not None:
            out.append(text)
    else:
        values[node.slot] = None if text is None else [text]
        out.append(_SlotValue(node.slot))


def _open_option(node: _Choice, position: int, out: list, values: dict):
    """Start option ``position`` of a choice: returns (body, where its text goes) or None.

    A slot's text goes to its own list, recorded in ``values`` before the body is rendered
    (so attributes keep the reading order) and referenced from ``out`` by a placeholder.
    """
    body = node.options[position].body
    if node.slot is None:
        return None if body is None else (body, out)
    target = []
    values[node.slot] = None if body is None else target
    out.append(_SlotValue(node.slot))
    return None if body is None else (body, target)


def _join(fragments: list, values: dict) -> str:
    parts = []
    for fragment in fragments:
        if isinstance(fragment, str):
            parts.append(fragment)
        else:
            value = values.get(fragment.name)
            if value is not None:
                parts.append(_join(value, values))
    return "".join(parts)


def _exclusive(path_a: tuple, path_b: tuple) -> bool:
    """True when two occurrences sit in different options of one choice (never together)."""
    for step_a, step_b in zip(path_a, path_b):
        if step_a != step_b:
            return step_a[0] == "c"
    return False  # one contains the other


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            converted = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a whole number 0 or more, got {value!r}") from None
        if converted != value:
            raise ValueError(f"{name} must be a whole number 0 or more, got {value!r}")
        value = converted
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value


# --- helpers --------------------------------------------------------------------------------

_PUNCTUATION_RE = re.compile(r"[,.;!?()\[\]]")
_SPACE_BEFORE_RE = re.compile(r" +([,.;!?)\]])")
_SPACE_AFTER_RE = re.compile(r"([(\[]) +")
_EMPTY_ITEMS_RE = re.compile(r",(?: *,)+")
_COMMA_PERIOD_RE = re.compile(r",(?= *\.)")
_COMMA_SPACE_RE = re.compile(r",(?=[^\s\d])")


def clean_prompt(text: str) -> str:
    """Tidy rendered text: one space between words, no space before ``, . ; ! ? ) ]`` or after
    ``( [``, empty list items (``a, , b``) collapsed, no comma before a period, a space after
    each comma (except inside numbers such as 1,000), no leading or trailing commas and
    spaces. Words themselves are never changed."""
    text = " ".join(text.split())
    if not _PUNCTUATION_RE.search(text):
        return text
    text = _SPACE_BEFORE_RE.sub(r"\1", text)
    text = _SPACE_AFTER_RE.sub(r"\1", text)
    text = _EMPTY_ITEMS_RE.sub(",", text)
    text = _COMMA_PERIOD_RE.sub("", text)
    text = _COMMA_SPACE_RE.sub(", ", text)
    return text.strip(" ,")


def sample_seed(seed: int, index: int) -> int:
    """Per-sample sampler seed from the base seed and the sample index.

    ``int.from_bytes(blake2b(f"{seed}:{index}", digest_size=8, person=b"ldp-sample-seed"),
    "little") >> 11``: 0 .. 2**53 - 1, stable across machines and Python versions, different
    for neighbouring indices, and exact in JSON and JavaScript.
    """
    seed = _check_count(seed, "seed")
    index = _check_count(index, "index")
    digest = hashlib.blake2b(f"{seed}:{index}".encode("ascii"), digest_size=8, person=_SEED_PERSON).digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)


def spread_stride(total: int) -> int:
    """Multiplier of enumerate mode's golden-ratio walk over ``total`` combinations.

    ``floor(total * (sqrt(5) - 1) / 2)`` in exact integer arithmetic, raised until coprime
    with ``total`` (so the walk is a bijection); 1 for totals up to 2.
    """
    total = _check_count(total, "total")
    if total <= 2:
        return 1
    stride = (math.isqrt(5 * total * total) - total) // 2
    while math.gcd(stride, total) != 1:
        stride += 1
    return stride


def count_combinations(template, *, wildcard_dirs=()) -> int:
    """Exact number of combinations of a :class:`Template` or template text."""
    if not isinstance(template, Template):
        template = Template.parse(template, wildcard_dirs=wildcard_dirs)
    return template.total
