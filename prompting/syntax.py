"""The template language's syntax: errors with line and column, the syntax tree, the parser
and wildcard files. :mod:`.template` renders what this module parses."""
from __future__ import annotations

import bisect
import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

__all__ = ["TemplateError", "WILDCARD_SUFFIX", "ESCAPABLE", "MAX_NESTING"]

WILDCARD_SUFFIX = ".txt"
ESCAPABLE = "{}|#\\_:~"
MAX_NESTING = 64  # braces and wildcards nested deeper than this are surely a mistake
_WEIGHT_RE = re.compile(r"([^{}|\n#\\:]*)::")
_NUMBER_RE = re.compile(r"[ \t]*(\d+(?:\.\d+)?|\.\d+)[ \t]*\Z")
_SLOT_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*:(?!:)")
_WILDCARD_RE = re.compile(r"__([A-Za-z0-9](?:[A-Za-z0-9\-/]|_(?!_))*)__")
_HEADER_RE = re.compile(r"^[ \t]*\[negative\][ \t]*(?:#[^\n]*)?$", re.IGNORECASE | re.MULTILINE)


# --- errors and sources ---------------------------------------------------------------------

class TemplateError(ValueError):
    """A template or wildcard file is malformed.

    Attributes
    ----------
    message : str
        What is wrong and how to fix it.
    source : str
        Template name or wildcard file path.
    line, column : int or None
        1-based position of the problem.
    line_text : str or None
        The offending line (shown with a caret under ``column``).
    """

    def __init__(self, message: str, *, source: str = "<template>", line: int | None = None,
                 column: int | None = None, line_text: str | None = None):
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.line_text = line_text
        super().__init__(self._format())

    def _format(self) -> str:
        if self.line is None:
            return f"{self.source}: {self.message}"
        head = f"{self.source}:{self.line}:{self.column}: {self.message}"
        if self.line_text is None:
            return head
        shown = self.line_text.replace("\t", " ")
        return f"{head}\n    {shown}\n    {' ' * (self.column - 1)}^"


class _Source:
    """Text of one template or wildcard file with offset -> (line, column) lookup."""

    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def locate(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def where(self, offset: int) -> str:
        line, column = self.locate(offset)
        return f"{self.name}:{line}:{column}"

    def error(self, message: str, offset: int) -> TemplateError:
        line, column = self.locate(offset)
        start = self.line_starts[line - 1]
        stop = self.text.find("\n", start)
        line_text = self.text[start:] if stop < 0 else self.text[start:stop]
        return TemplateError(message, source=self.name, line=line, column=column, line_text=line_text)


# --- syntax tree ----------------------------------------------------------------------------

# ``kind`` tags let the renderer dispatch without isinstance chains; ``size`` (number of
# combinations) is filled in by Template._count. Nodes belong to one Template only.
_TEXT, _SEQ, _CHOICE, _REF = range(4)


class _Text:
    __slots__ = ("text", "size")
    kind = _TEXT

    def __init__(self, text: str):
        self.text = text
        self.size = 1


class _Seq:
    __slots__ = ("items", "size")
    kind = _SEQ

    def __init__(self, items: tuple):
        self.items = items
        self.size = None


class _Option:
    __slots__ = ("weight", "body", "offset")

    def __init__(self, weight: Fraction, body: _Seq | None, offset: int):
        self.weight = weight
        self.body = body  # None: the explicit empty option '~'
        self.offset = offset


class _Choice:
    __slots__ = ("slot", "options", "source", "offset", "wildcard", "cumulative_weights",
                 "total_weight", "size", "cumulative_sizes", "is_repeat", "plain")
    kind = _CHOICE

    def __init__(self, slot, options, source, offset, wildcard=None):
        self.size = None
        # Fast path for the common list of plain words: option texts (None for '~'), or None.
        self.plain = None
        self.cumulative_sizes = None
        self.is_repeat = False  # True: repeats the value of an identical slot outside all choices
        self.slot = slot
        self.options = tuple(options)
        self.source = source
        self.offset = offset
        self.wildcard = wildcard
        # Integer weights (scaled by the common denominator) so random picks use exact
        # integer arithmetic, identical on every machine.
        scale = math.lcm(*(option.weight.denominator for option in self.options))
        running, cumulative = 0, []
        for option in self.options:
            running += int(option.weight * scale)
            cumulative.append(running)
        self.cumulative_weights = cumulative
        self.total_weight = running
        if all(option.body is None or (len(option.body.items) == 1 and option.body.items[0].kind == _TEXT)
               for option in self.options):
            self.plain = tuple(None if option.body is None else option.body.items[0].text
                               for option in self.options)


class _Ref:
    __slots__ = ("name", "source", "offset", "target", "size")
    kind = _REF

    def __init__(self, name: str, source: _Source, offset: int):
        self.size = None
        self.name = name
        self.source = source
        self.offset = offset
        self.target: _Choice | None = None


def _key(node):
    """Canonical form of a subtree: equal keys mean the same meaning (slot identity, duplicates)."""
    if isinstance(node, _Text):
        return ("t", " ".join(node.text.split()))
    if isinstance(node, _Seq):
        return ("s",) + tuple(_key(item) for item in node.items)
    if isinstance(node, _Ref):
        return ("w", node.name)
    return ("c", node.slot) + tuple(
        (option.weight, None if option.body is None else _key(option.body)) for option in node.options)


def _trimmed(items: list) -> _Seq:
    """Drop the whitespace right inside an option (``{ a | b }`` == ``{a|b}``)."""
    if items and isinstance(items[0], _Text):
        items[0] = _Text(items[0].text.lstrip())
    if items and isinstance(items[-1], _Text):
        items[-1] = _Text(items[-1].text.rstrip())
    return _Seq(tuple(item for item in items if not (isinstance(item, _Text) and not item.text)))


def _describe(body: _Seq | None, limit: int = 40) -> str:
    """Short readable form of an option for messages."""
    if body is None:
        return "~"
    parts = []
    for item in body.items:
        if isinstance(item, _Text):
            parts.append(item.text)
        elif isinstance(item, _Ref):
            parts.append(f"__{item.name}__")
        else:
            parts.append("{...}")
    text = " ".join("".join(parts).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- parser ---------------------------------------------------------------------------------

class _Parser:
    """Recursive-descent parser over ``source.text[start:end]``."""

    def __init__(self, source: _Source, start: int, end: int):
        self.source = source
        self.text = source.text
        self.pos = start
        self.end = end
        self.depth = 0

    def error(self, message: str, offset: int | None = None) -> TemplateError:
        return self.source.error(message, self.pos if offset is None else offset)

    def skip_space(self, newlines: bool) -> None:
        """Skip spaces, comments, continuations (and line breaks when ``newlines``)."""
        text, end = self.text, self.end
        while self.pos < end:
            char = text[self.pos]
            if char in " \t" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "#":
                stop = text.find("\n", self.pos, end)
                self.pos = end if stop < 0 else stop
            elif char == "\\" and text.startswith("\\\n", self.pos):
                self.pos += 2
            else:
                return

    def parse_sequence(self, stops: str) -> list:
        """Items up to (not including) a character of ``stops`` or the end."""
        text, end = self.text, self.end
        items, buffer = [], []

        def flush():
            if buffer:
                items.append(_Text("".join(buffer)))
                buffer.clear()

        while self.pos < end:
            char = text[self.pos]
            if char in stops:
                break
            if char == "\\":
                following = text[self.pos + 1] if self.pos + 1 < end else ""
                if following == "\n":  # continuation: the break and the indentation -> one space
                    buffer.append(" ")
                    self.pos += 2
                    while self.pos < end and text[self.pos] in " \t":
                        self.pos += 1
                    continue
                if following and following in ESCAPABLE:
                    buffer.append(following)
                    self.pos += 2
                    continue
                shown = "\\" + following if following.strip() else "\\"
                raise self.error(
                    f"unknown escape '{shown}': a backslash may only precede one of "
                    f"{' '.join(ESCAPABLE)} or end a line; write '\\\\' for a backslash")
            if char == "#":
                stop = text.find("\n", self.pos, end)
                self.pos = end if stop < 0 else stop
                continue
            if char == "{":
                flush()
                items.append(self.parse_choice())
                continue
            if char == "}":
                raise self.error("unbalanced '}': there is no '{' to close; write '\\}' for a literal brace")
            if char == "|":
                raise self.error(
                    "'|' outside braces: options must be written inside '{...}', e.g. {red|blue}; "
                    "write '\\|' for a literal bar")
            if char == ":" and text.startswith("::", self.pos):
                raise self.error(
                    "'::' is only allowed right after a weight at the start of an option "
                    "(e.g. {3::red|blue}); write '\\:\\:' for literal colons")
            if char == "_" and text.startswith("__", self.pos):
                match = _WILDCARD_RE.match(text, self.pos, end)
                if match:
                    name = match.group(1)
                    if "//" in name or name.endswith("/"):
                        raise self.error(f"bad wildcard name {name!r}: empty folder name")
                    flush()
                    items.append(_Ref(name, self.source, self.pos))
                    self.pos = match.end()
                    continue
                if self.pos + 2 < end and text[self.pos + 2].isalnum():
                    raise self.error(
                        "unterminated wildcard: '__name__' needs closing '__' (names use letters, "
                        "digits, '-', '/' and single '_'); write '\\_' for a literal underscore")
                buffer.append("__")
                self.pos += 2
                continue
            buffer.append(char)
            self.pos += 1
        flush()
        return items

    def parse_choice(self) -> _Choice:
        opened = self.pos
        self.pos += 1
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"braces nested more than {MAX_NESTING} deep", opened)
        self.skip_space(newlines=True)
        slot = None
        match = _SLOT_RE.match(self.text, self.pos, self.end)
        if match:
            slot = match.group(1)
            self.pos = match.end()
        options = []
        while True:
            options.append(self.parse_option("|}", opened))
            if self.pos >= self.end:
                raise self._unclosed(opened)
            closing = self.text[self.pos]
            self.pos += 1
            if closing == "}":
                break
        self.depth -= 1
        _check_duplicates(options, self.source, "option")
        return _Choice(slot, options, self.source, opened)

    def _unclosed(self, opened: int) -> TemplateError:
        return self.error("unbalanced '{': it is never closed; add '}' (or write '\\{' for a "
                          "literal brace)", opened)

    def parse_option(self, stops: str, opened: int | None = None) -> _Option:
        newlines = "\n" not in stops
        self.skip_space(newlines)
        start = self.pos
        weight = Fraction(1)
        match = _WEIGHT_RE.match(self.text, self.pos, self.end)
        if match:
            raw = match.group(1)
            number = _NUMBER_RE.match(raw)
            if not number:
                raise self.error(
                    f"bad weight {raw.strip()!r}: a weight is a positive number followed by '::' "
                    "at the start of an option (e.g. 3::red or 0.5::red); write '\\:' for a "
                    "literal colon", start)
            try:
                weight = Fraction(Decimal(number.group(1)))
            except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
                raise self.error(f"bad weight {raw.strip()!r}", start) from None
            if weight <= 0:
                raise self.error(f"bad weight {raw.strip()!r}: weights must be greater than 0 "
                                 "(delete or comment out an option to disable it)", start)
            self.pos = match.end()
            self.skip_space(newlines)
        if self.text.startswith("~", self.pos):
            saved = self.pos
            self.pos += 1
            self.skip_space(newlines)
            if self.pos >= self.end or self.text[self.pos] in stops:
                return _Option(weight, None, start)
            self.pos = saved
        body = _trimmed(self.parse_sequence(stops))
        if not body.items:
            if opened is not None and self.pos >= self.end:
                raise self._unclosed(opened)
            raise self.error(
                "empty option: every option needs text; write '~' for an intentionally empty "
                "option (e.g. {~|glasses})", start)
        return _Option(weight, body, start)

    def parse_lines(self) -> list[_Option]:
        """A wildcard file: one option per (logical) line."""
        options = []
        while True:
            self.skip_space(newlines=True)
            if self.pos >= self.end:
                return options
            options.append(self.parse_option("\n"))


def _check_duplicates(options: list[_Option], source: _Source, what: str) -> None:
    seen = {}
    for option in options:
        key = None if option.body is None else _key(option.body)
        if key in seen:
            raise source.error(
                f"duplicate {what} {_describe(option.body)!r} (already at "
                f"{source.where(seen[key])}); each {what} must differ so every combination "
                "is a different prompt; use a weight (e.g. 2::...) to make one more likely",
                option.offset)
        seen[key] = option.offset


def _split_sections(source: _Source) -> tuple[tuple[int, int], tuple[int, int] | None]:
    headers = list(_HEADER_RE.finditer(source.text))
    if len(headers) > 1:
        raise source.error("a second [negative] line: a template has at most one negative section",
                           headers[1].start() + headers[1].group(0).index("["))
    if not headers:
        return (0, len(source.text)), None
    header = headers[0]
    return (0, header.start()), (header.end(), len(source.text))


# --- wildcard files -------------------------------------------------------------------------

def _find_wildcard(name: str, directories: tuple[Path, ...]) -> Path | None:
    # Names are checked by _WILDCARD_RE (letters, digits, '-', '_', '/'; no '.'), so the
    # file always lies inside one of the folders.
    for directory in directories:
        candidate = directory.joinpath(*name.split("/")).with_suffix(WILDCARD_SUFFIX)
        if candidate.is_file():
            return candidate
    return None


def _available_wildcards(directories: tuple[Path, ...]) -> list[str]:
    names = set()
    for directory in directories:
        if directory.is_dir():
            for path in directory.rglob("*" + WILDCARD_SUFFIX):
                names.add(path.relative_to(directory).with_suffix("").as_posix())
    return sorted(names)


def _read_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n")
