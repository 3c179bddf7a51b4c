"""Contact sheets: what refinement did (one row per portrait) and what a dataset holds.

:func:`contact_sheet` (``ld-portrait demo``) shows one row per portrait; :func:`dataset_sheet`
(``ld-portrait dataset sheet``) shows samples of a dataset like the paper's Figure 5: each
sample composited over a varied procedural background next to its alpha matte.

Refinement sheet columns (left to right):

1. **raw composite**: the decoded foreground over the checkerboard of
   ``base.errormap.checker_composite`` with the decoder's alpha, so speckle, pinholes and
   debris show as checkerboard where the portrait should be solid (the error-map panel's first
   picture is the same);
2. **raw alpha**: the decoder's alpha as it came out, before refinement;
3. **alpha-bar_h**: the paper's error view (``base.errormap.alpha_bar_error_view``): raw
   semi-transparent pixels (alpha-bar) in white on black, the pixels refinement corrected in
   red; under its title the legend ``base.errormap.RED_LEGEND`` is written in that red (the
   error-map panel's titles carry the same legend in the same red). Rows that carry the
   pixels refinement kept unjudged (``SheetRow.uncertain``, from ``RefineResult.uncertain``)
   show them in ``base.errormap.UNCERTAIN_CYAN``, and the sheet then has a second legend
   line, ``base.errormap.UNCERTAIN_LEGEND`` in that cyan;
4. **refined alpha**: the matte that goes into the dataset;
5. **refined composite**: the padded foreground with the refined alpha over a coloured
   gradient, the way a training pipeline composites it.

Sheet sizes are bounded (:data:`MAX_CELL`, :data:`MAX_SHEET_PIXELS`) and checked before any
memory is allocated. Drawn with numpy and OpenCV only; returns 8-bit RGB, which
:func:`..dataset.imagefiles.write_png_atomic` accepts as it is.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .imagefiles import to_uint8
from ..base.errormap import (ERROR_RED, RED_LEGEND, UNCERTAIN_CYAN, UNCERTAIN_LEGEND, alpha_bar_error_view,
                             checker_composite)
from ..base.validation import HALF_CODE, as_alpha, as_rgb, check_same_size

__all__ = ["SheetRow", "contact_sheet", "ContactSheet", "MAX_SHEET_ROWS", "gradient_background", "COLUMN_TITLES",
           "COLUMN_LEGENDS", "COLUMN_UNCERTAIN_LEGENDS", "SheetTile", "composite_sheet", "sheet_size",
           "check_sheet_size", "choose_samples", "dataset_sheet", "SHEET_BACKGROUND_KINDS", "MAX_CELL",
           "MAX_SHEET_PIXELS"]

COLUMN_TITLES = ("raw composite", "raw alpha", "alpha-bar_h", "refined alpha",
                 "refined composite")
#: Second header line under a column title: the legend for red under alpha-bar_h (the panel
#: of ``base.errormap`` writes the same legend, in the same red, in its titles).
COLUMN_LEGENDS = ("", "", RED_LEGEND, "", "")
#: Third header line, drawn only when a row carries uncertain pixels: their legend (cyan).
COLUMN_UNCERTAIN_LEGENDS = ("", "", UNCERTAIN_LEGEND, "", "")

_SHEET_BACKGROUND = np.array([0.11, 0.11, 0.13], np.float32)
# Text colours in 8-bit RGB: OpenCV draws text on uint8 images only.
_TEXT = (235, 235, 235)
_KEEP = (115, 217, 115)
_REJECT = (242, 115, 102)
_LEGEND = tuple(int(round(255 * c)) for c in ERROR_RED)
_UNCERTAIN_LEGEND = tuple(int(round(255 * c)) for c in UNCERTAIN_CYAN)


@dataclasses.dataclass
class SheetRow:
    """One portrait for :func:`contact_sheet`.

    Attributes
    ----------
    label : str
        Printed above the row (sample id, for instance).
    rgb : ndarray [H, W, 3]
        Decoded (or padded) foreground colour, 0..1.
    raw_alpha : ndarray [H, W]
        Alpha before refinement.
    fg : ndarray [H, W, 3]
        Padded foreground colour for the refined composite.
    alpha : ndarray [H, W]
        Refined alpha.
    note : str
        Second caption part (verdict, corrected share, ...).
    kept : bool or None
        Colours the note green (True) or red (False); None leaves it neutral.
    uncertain : ndarray [H, W] of bool, optional
        Pixels refinement kept unjudged (``RefineResult.uncertain``), drawn cyan in the
        alpha-bar_h column.
    """

    label: str
    rgb: np.ndarray
    raw_alpha: np.ndarray
    fg: np.ndarray
    alpha: np.ndarray
    note: str = ""
    kept: bool | None = None
    uncertain: np.ndarray | None = None


def gradient_background(height: int, width: int, index: int = 0) -> np.ndarray:
    """Diagonal two-colour gradient, float32 [height, width, 3]; ``index`` picks the palette."""
    palettes = (((0.10, 0.45, 0.55), (0.55, 0.25, 0.60)),
                ((0.85, 0.55, 0.25), (0.25, 0.35, 0.70)),
                ((0.20, 0.55, 0.35), (0.90, 0.80, 0.40)),
                ((0.70, 0.20, 0.30), (0.20, 0.25, 0.35)))
    top, bottom = (np.array(c, np.float32) for c in palettes[index % len(palettes)])
    y, x = np.indices((height, width), dtype=np.float32)
    t = (y / max(height - 1, 1) * 0.7 + x / max(width - 1, 1) * 0.3)[..., None]
    return top * (1.0 - t) + bottom * t


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``image`` to fit ``height`` x ``width`` (aspect kept), centred on the sheet colour."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    if resized.ndim == 2:
        resized = resized[..., None]
    canvas = np.empty((height, width, 3), np.float32)
    canvas[:] = _SHEET_BACKGROUND
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


def _text(canvas: np.ndarray, text: str, x: int, y: int, colour, scale: float) -> int:
    """Draw ``text`` with its baseline at ``y``; returns the x after it."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = 1
    cv2.putText(canvas, text, (x, y), font, scale, colour, thickness, cv2.LINE_AA)
    return x + cv2.getTextSize(text, font, scale, thickness)[0][0]


def _shorten(text: str, max_width: int, scale: float) -> str:
    """``text``, cut and ended with '...' if it is wider than ``max_width`` pixels."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    if cv2.getTextSize(text, font, scale, 1)[0][0] <= max_width:
        return text
    while text and cv2.getTextSize(text + "...", font, scale, 1)[0][0] > max_width:
        text = text[:-1]
    return text + "..."


#: Most portraits one refinement contact sheet shows (``ld-portrait demo --sheet-rows``): 40
#: rows at the demo's 256 px cell make a sheet of about 1330 x 11600 pixels (46 MB in memory),
#: already a long scroll; without a cap the sheet, and the memory drawing it, grow with the run
#: (a 200-portrait demo held 9.5 GB). The sheet says when portraits were left off.
MAX_SHEET_ROWS = 40


@dataclasses.dataclass
class _Strip:
    """One drawn row of a :class:`ContactSheet`: its caption and cells as 8-bit RGB."""

    pixels: np.ndarray
    has_uncertain: bool


class ContactSheet:
    """A refinement contact sheet drawn one row at a time, in memory that does not grow with
    the run: each :class:`SheetRow` is drawn at cell size as it is added (its full-size
    pictures can be dropped at once), and at most ``max_rows`` rows are kept; rows beyond that
    are only counted (:meth:`skip`) and a line under the last row says how many were left off.

    Parameters
    ----------
    cell : int
        Height of each picture cell in pixels (32..:data:`MAX_CELL`), decided up front; the
        width follows the first row's aspect.
    gap : int
        Spacing between cells in pixels.
    max_rows : int
        Rows drawn at most (1.. :data:`MAX_SHEET_ROWS` by default; any whole number >= 1).

    Raises
    ------
    ValueError
        Sizes out of bounds, or a sheet of ``max_rows`` rows over :data:`MAX_SHEET_PIXELS`
        (refused at the first row, before anything is drawn).
    """

    def __init__(self, *, cell: int = 256, gap: int = 8, max_rows: int = MAX_SHEET_ROWS):
        _check_layout(cell, gap)
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
            raise ValueError(f"max_rows must be a whole number >= 1, got {max_rows!r}.")
        self.cell, self.gap, self.max_rows = int(cell), int(gap), int(max_rows)
        self.scale, self.title_line, self.caption = _sheet_metrics(self.cell)
        self.cell_w: int | None = None  # from the first row's aspect
        self._strips: list[_Strip | None] = []
        self.skipped = 0

    @property
    def shown(self) -> int:
        """Rows drawn so far."""
        return len(self._strips)

    @property
    def has_room(self) -> bool:
        """Whether :meth:`add` draws another row (callers skip preparing rows that would not
        be shown)."""
        return len(self._strips) < self.max_rows

    @property
    def width(self) -> int:
        return self.gap + len(COLUMN_TITLES) * (self.cell_w + self.gap)

    def _height(self, rows: int, *, footer: bool, uncertain: bool) -> int:
        header = self.title_line + (2 if uncertain else 1) * self.caption
        return (header + rows * (self.caption + self.cell + self.gap) + self.gap
                + (self.caption if footer else 0))

    def add(self, row: SheetRow) -> bool:
        """Draw ``row`` (True), or count it as left off when the sheet is full (False)."""
        if not self.has_room:
            self.skip()
            return False
        if self.cell_w is None:
            first_h, first_w = np.asarray(row.raw_alpha).shape[:2]
            self.cell_w = min(MAX_CELL, max(32, int(round(self.cell * first_w / first_h))))
            # The largest sheet this can become, refused before anything is drawn.
            check_sheet_size(self._height(self.max_rows, footer=True, uncertain=True), self.width)
        self._strips.append(self._draw_row(row, len(self._strips)))
        return True

    def skip(self) -> None:
        """Count a portrait that is not drawn (the sheet is full)."""
        self.skipped += 1

    def _draw_row(self, row: SheetRow, index: int) -> _Strip:
        cell, cell_w, gap, caption, scale = (self.cell, self.cell_w, self.gap, self.caption,
                                             self.scale)
        rgb = as_rgb(row.rgb, "rgb")
        fg = as_rgb(row.fg, "fg")
        raw = as_alpha(row.raw_alpha, "raw_alpha")
        alpha = as_alpha(row.alpha, "alpha")
        check_same_size(rgb, raw, "rgb", "raw_alpha")
        check_same_size(fg, alpha, "fg", "alpha")
        check_same_size(raw, alpha, "raw_alpha", "alpha")
        h, w = alpha.shape
        refined = fg * alpha[..., None] + gradient_background(h, w, index) * (1.0 - alpha[..., None])
        corrected = np.abs(alpha - raw) > HALF_CODE  # the stored files are 8-bit
        pictures = (checker_composite(rgb, raw), np.repeat(raw[..., None], 3, axis=2),
                    alpha_bar_error_view(raw, corrected, row.uncertain),
                    np.repeat(alpha[..., None], 3, axis=2),
                    refined)
        width = self.width
        strip = np.empty((caption + cell + gap, width, 3), np.uint8)
        strip[:] = to_uint8(_SHEET_BACKGROUND)
        x_text = _text(strip, _shorten(row.label, cell_w * 2, scale), gap + 2, caption - 7,
                       _TEXT, scale)
        if row.note:
            colour = _TEXT if row.kept is None else (_KEEP if row.kept else _REJECT)
            _text(strip, _shorten(row.note, width - x_text - 2 * gap, scale), x_text + 12,
                  caption - 7, colour, scale)
        for column, picture in enumerate(pictures):
            x = gap + column * (cell_w + gap)
            strip[caption:caption + cell, x:x + cell_w] = to_uint8(_fit(
                picture.astype(np.float32), cell, cell_w))
        return _Strip(strip, row.uncertain is not None)

    def finish(self) -> np.ndarray:
        """The sheet, uint8 RGB [H, W, 3]: titles, legends, the drawn rows and, when rows were
        left off, a line saying how many. The drawn rows are released as they are copied, so
        the sheet can be finished once.

        Raises
        ------
        ValueError
            No row was added.
        """
        if not self._strips:
            raise ValueError("a contact sheet needs at least one row.")
        if any(strip is None for strip in self._strips):
            raise ValueError("this contact sheet was finished already.")
        cell_w, gap, caption, scale = self.cell_w, self.gap, self.caption, self.scale
        legend_rows = [COLUMN_LEGENDS]
        if any(strip.has_uncertain for strip in self._strips):
            legend_rows.append(COLUMN_UNCERTAIN_LEGENDS)
        header = self.title_line + len(legend_rows) * caption  # titles, then the legend lines
        width = self.width
        height = self._height(len(self._strips), footer=bool(self.skipped),
                              uncertain=len(legend_rows) > 1)
        check_sheet_size(height, width)
        sheet = np.empty((height, width, 3), np.uint8)
        sheet[:] = to_uint8(_SHEET_BACKGROUND)
        for column, title in enumerate(COLUMN_TITLES):
            x = gap + column * (cell_w + gap) + 2
            _text(sheet, _shorten(title, cell_w, scale), x, self.title_line - 8, _TEXT, scale)
            for line, (legends, colour) in enumerate(zip(legend_rows, (_LEGEND, _UNCERTAIN_LEGEND))):
                if legends[column]:
                    _text(sheet, _shorten(legends[column], cell_w, scale), x,
                          self.title_line + (line + 1) * caption - 8, colour, scale)
        strip_height = caption + self.cell + gap
        for index, strip in enumerate(self._strips):
            top = header + index * strip_height
            sheet[top:top + strip_height] = strip.pixels
            self._strips[index] = None  # released as copied: never two copies of the rows
        if self.skipped:
            _text(sheet, _shorten(self.omission_note(), width - 2 * gap, scale), gap + 2,
                  height - gap - 7, _TEXT, scale)
        return sheet

    def omission_note(self) -> str:
        """What the line under the rows says when rows were left off ("" when none were)."""
        if not self.skipped:
            return ""
        total = self.shown + self.skipped
        return (f"showing the first {self.shown} of {total} portraits (at most {self.max_rows} "
                f"rows); the other {self.skipped} are in the dataset")


def contact_sheet(rows: Sequence[SheetRow], *, cell: int = 256, gap: int = 8) -> np.ndarray:
    """Draw the contact sheet (columns in :data:`COLUMN_TITLES`) of every row at once.

    A run that makes rows one by one uses :class:`ContactSheet`, which draws each row as it
    comes and keeps at most :data:`MAX_SHEET_ROWS`.

    Parameters
    ----------
    rows : sequence of SheetRow
        One entry per portrait; images may have different sizes.
    cell : int
        Height of each picture cell in pixels (32..:data:`MAX_CELL`); the width follows the
        first row's aspect.
    gap : int
        Spacing between cells in pixels.

    Returns
    -------
    uint8 ndarray [H, W, 3], RGB

    Raises
    ------
    ValueError
        No rows, sizes out of bounds, or a sheet over :data:`MAX_SHEET_PIXELS`.
    """
    if not rows:
        raise ValueError("contact_sheet needs at least one row.")
    sheet = ContactSheet(cell=cell, gap=gap, max_rows=len(rows))
    for row in rows:
        sheet.add(row)
    return sheet.finish()


# --------------------------------------------------------------------------------------------
# Dataset sheet (the paper's Figure 5: composites on varied backgrounds beside their mattes)
# --------------------------------------------------------------------------------------------

#: Procedural kinds cycled through on a dataset sheet (photo-like ones first).
SHEET_BACKGROUND_KINDS = ("bokeh", "studio", "gradient", "noise", "solid", "checker")


@dataclasses.dataclass
class SheetTile:
    """One sample for :func:`composite_sheet`.

    Attributes
    ----------
    label : str
        Caption above the pair (sample id and a few attributes).
    fg : ndarray [H, W, 3]
        Foreground colour (padded F), 0..1.
    alpha : ndarray [H, W]
        Alpha, 1 = opaque.
    background : ndarray [h, w, 3]
        Any size; cover-cropped to the sample's size.
    """

    label: str
    fg: np.ndarray
    alpha: np.ndarray
    background: np.ndarray


def _sheet_metrics(cell: int) -> tuple[float, int, int]:
    """(text scale, header height, caption height) for a cell size (the same rule as above)."""
    scale = max(0.35, cell / 560)
    return scale, int(28 * scale / 0.45), int(24 * scale / 0.45)


#: Largest picture cell in pixels (a 4K portrait fits; --cell 100000 would need 67 GiB).
MAX_CELL = 2048
#: Largest sheet in pixels (100 megapixels: 300 MB as 8-bit RGB).
MAX_SHEET_PIXELS = 100_000_000


def check_sheet_size(height: int, width: int) -> None:
    """Refuse a sheet over :data:`MAX_SHEET_PIXELS` before any memory is allocated.

    Raises
    ------
    ValueError
        The message gives the size and what to reduce.
    """
    pixels = int(height) * int(width)
    if pixels > MAX_SHEET_PIXELS:
        raise ValueError(
            f"the sheet would be {width} x {height} pixels ({pixels / 1e6:.0f} megapixels); the "
            f"limit is {MAX_SHEET_PIXELS // 1_000_000} megapixels. Use a smaller cell, fewer "
            "samples (--count) or fewer columns.")


def _check_layout(cell: int, gap: int, columns: int | None = None) -> None:
    """Cell, gap and column counts within bounds (whole numbers, not absurd)."""
    for name, value, low, high in (("cell", cell, 32, MAX_CELL), ("gap", gap, 0, 256),
                                   ("columns", columns, 1, 64)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        if value < low:
            raise ValueError(f"{name} must be at least {low} pixels, got {value}."
                             if name != "columns" else f"columns must be at least 1, got {value}.")
        if value > high:
            unit = "" if name == "columns" else " pixels"
            raise ValueError(f"{name} {value} is too large: the limit is {high}{unit}.")


def sheet_size(count: int, *, cell: int = 256, columns: int = 4, gap: int = 8) -> tuple[int, int]:
    """(height, width) in pixels of a :func:`composite_sheet` with ``count`` tiles.

    Layout: a title strip of height ``header``; then rows of ``columns`` pairs, each pair two
    ``cell x cell`` squares (composite, alpha) ``gap`` apart under a caption strip; ``gap``
    between pairs, rows and around the edge::

        width  = gap + columns' * (2 * cell + gap + gap)
        height = header + rows * (caption + cell + gap) + gap

    with ``columns' = min(columns, count)`` and ``rows = ceil(count / columns')``.
    """
    if count < 1:
        raise ValueError(f"a sheet needs at least one sample, got {count}.")
    _check_layout(cell, gap, columns)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    _, header, caption = _sheet_metrics(cell)
    return header + rows * (caption + cell + gap) + gap, gap + columns * (2 * cell + 2 * gap)


def composite_sheet(tiles: Sequence[SheetTile], *, cell: int = 256, columns: int = 4,
                    gap: int = 8, title: str = "") -> np.ndarray:
    """Draw samples as (composite over its background | alpha) pairs in a grid.

    Parameters
    ----------
    tiles : sequence of SheetTile
    cell : int
        Side of each square picture cell; pictures are fitted inside with their aspect kept.
    columns : int
        Pairs per row.
    gap : int
        Spacing in pixels.
    title : str
        Printed in the strip at the top.

    Returns
    -------
    uint8 ndarray [H, W, 3], RGB, of size :func:`sheet_size`.
    """
    from ..base.composite import composite_over

    height, width = sheet_size(len(tiles), cell=cell, columns=columns, gap=gap)
    check_sheet_size(height, width)
    columns = min(columns, len(tiles))
    scale, header, caption = _sheet_metrics(cell)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = to_uint8(_SHEET_BACKGROUND)
    if title:
        _text(sheet, _shorten(title, width - 2 * gap, scale), gap + 2, header - 8, _TEXT, scale)
    pair_width = 2 * cell + gap
    for number, tile in enumerate(tiles):
        fg = as_rgb(tile.fg, "fg")
        alpha = as_alpha(tile.alpha, "alpha")
        check_same_size(fg, alpha, "fg", "alpha")
        composite = composite_over(fg, alpha, tile.background)
        row, column = divmod(number, columns)
        left = gap + column * (pair_width + gap)
        top = header + row * (caption + cell + gap)
        _text(sheet, _shorten(tile.label, pair_width - 4, scale), left + 2, top + caption - 7,
              _TEXT, scale)
        for offset, picture in ((0, composite), (cell + gap, np.repeat(alpha[..., None], 3, axis=2))):
            sheet[top + caption:top + caption + cell, left + offset:left + offset + cell] = \
                to_uint8(_fit(picture, cell, cell))
    return sheet


def choose_samples(root, count: int, seed: int = 0) -> list[str]:
    """``count`` accepted sample ids of ``root`` drawn without repeats from ``seed``, sorted.

    All of them (sorted) when the dataset has no more than ``count``.
    """
    from . import list_sample_ids

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    return sorted(_sample_order(list_sample_ids(root), seed)[:count])


def _sample_order(ids: list[str], seed: int) -> list[str]:
    """All ``ids`` in an order shuffled by ``seed`` (the sheet takes them from the front)."""
    return [ids[int(i)] for i in np.random.default_rng(seed).permutation(len(ids))]


def _tile_label(sample_id: str, meta: dict, limit: int = 3) -> str:
    attributes = meta.get("attributes")
    if not isinstance(attributes, dict):
        return sample_id
    values = [str(v) for v in attributes.values() if v not in (None, "")][:limit]
    return f"{sample_id}  {', '.join(values)}" if values else sample_id


def dataset_sheet(root, *, count: int = 12, seed: int = 0, cell: int = 256, columns: int = 4,
                  gap: int = 8, backgrounds: tuple = SHEET_BACKGROUND_KINDS) -> np.ndarray:
    """A Figure-5 style sheet of a dataset: ``count`` samples over varied backgrounds (the
    procedural kinds in ``backgrounds``, in turn; ``("checker",)`` for a transparency checker
    only).

    Samples are taken in the seeded order of :func:`choose_samples` (samples whose files
    cannot be read are passed over) and shown sorted by id; sample ``i`` of the sheet gets the
    procedural background ``SHEET_BACKGROUND_KINDS[i % 6]`` with seed
    ``background_seed(seed, i)``, so the same arguments give the same picture.

    The sheet is a uint8 RGB [H, W, 3] array as from :func:`contact_sheet`; ``ValueError`` when
    there are no accepted samples or the sizes are bad.
    """
    from . import DatasetError, list_sample_ids, load_sample
    from ..base.composite import background_seed, procedural_background

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder.")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    check_sheet_size(*sheet_size(count, cell=cell, columns=columns, gap=gap))  # before reading
    ids = list_sample_ids(root)
    if not ids:
        raise ValueError(f"{root} has no accepted samples (meta/*.json) to show.")
    samples = []
    for sample_id in _sample_order(ids, seed):  # unreadable samples are passed over
        if len(samples) == count:
            break
        try:
            sample = load_sample(root, sample_id)
        except (OSError, ValueError, KeyError, DatasetError):
            continue
        if sample.fg is not None and sample.alpha is not None and \
                sample.fg.shape[:2] == sample.alpha.shape:
            samples.append(sample)
    samples.sort(key=lambda sample: sample.sample_id)
    tiles = []
    for number, sample in enumerate(samples):
        sample_id = sample.sample_id
        h, w = sample.alpha.shape
        kind = backgrounds[number % len(backgrounds)]
        background = procedural_background(kind, h, w, background_seed(seed, number))
        tiles.append(SheetTile(_tile_label(sample_id, sample.meta), sample.fg, sample.alpha,
                               background))
    if not tiles:
        raise ValueError(f"none of the accepted samples in {root} could be read; run "
                         "`ld-portrait dataset verify`.")
    over = "a transparency checker" if tuple(backgrounds) == ("checker",) else "a procedural background"
    title = f"{root.name}: {len(tiles)} sample(s), composite over {over} | alpha"
    return composite_sheet(tiles, cell=cell, columns=columns, gap=gap, title=title)
