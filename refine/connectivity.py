"""Connectivity-aware alpha refinement for Layer Diffusion portraits.

A portrait's genuine soft structure (hair, soft edges, veils, motion blur) lets the background
show through; Layer Diffusion's alpha errors are dips and dimming inside a body that hides it.
:func:`refine_alpha` repairs a pixel only where the evidence says artifact (precision before
recall: a dataset run can always generate another portrait), keeps it where the evidence says
genuine, and marks it **uncertain** where the prior cannot tell:

1. True background ``B``: near-zero pixels 8-connected to the border, plus enclosed near-zero
   regions of at least ``hole_min_area`` (the gap between an arm and the torso).
2. See-through evidence: pixels below ``see_through_level`` that ``B`` reaches through such
   pixels (grayscale reconstruction by erosion from ``B``, cut at one level: the gaps between
   strands), and enclosed see-through regions too wide for a pinhole (pockets of a hair mass).
   Pixels farther than ``reach`` from the evidence are *deep*.
3. Enclosed dips: soft regions that ``B`` cannot reach through soft pixels (the
   reconstruction lifts them to opaque). Soft is below the noise level of opaque (``1 -
   background_level``: Layer Diffusion's noise is the same few codes at both ends), so a
   chain of noise-level pixels walls a dip in rather than joining it to the soft edge. A dip
   smaller than a speck (``(2 * solid_radius) ** 2``) that the background shows through
   nowhere (no pixel below ``see_through_level``) is dimming: filled. A dip with no other dip
   within ``2 * solid_radius`` is alone in a solid body: filled when small (speckle,
   pinholes) or near-opaque. Deep dips are filled when small, near-opaque (at least
   ``deep_fill_level``) or wider than a pocket between strands (``reach ** 2``). A dip whose
   surroundings within ``reach`` hold less than ``soft_company_fraction`` of other soft
   pixels is a hole in a solid body and is filled at any level (hair brings soft company:
   other pockets, strand edges). Other dips are hair texture and kept; the dim lone or deep
   ones are marked uncertain.
4. Near-opaque plateaus: pixels of at least ``deep_fill_level`` whose neighbourhood dips less
   than ``flat_step`` (dimming, banding and interior speckle are flat; near-opaque hair drops
   steeply at strand edges), in flat areas at least a solid diameter wide or in enclosed dips
   (dimming covers areas and speckle sits in a solid body; a strand is a line reaching the soft
   edge), farther than ``2 * solid_radius`` from the evidence, are filled, with the near-opaque
   pixels of their rims (within ``solid_radius`` of them, where the step down to the plateau
   fails the flatness test). Noise-level pixels (below opaque by no more than the noise) not
   beside the open soft region are filled. Deep soft pixels left as they are are marked
   uncertain (a veil, translucent hair volume or a dimming blotch: the prior cannot tell
   them apart).
5. Frame fade: deep pixels of at least ``see_through_level`` on lines from the border to a
   near-opaque anchor ``frame_fade_depth`` inside (the body leaves the frame) are filled.
6. Debris: islands farther than ``2 * solid_radius`` from the portrait (nearer, they are its
   soft edge broken by noise) and smaller than ``island_keep_fraction`` of it are set to 0.

The colour image is not used: Layer Diffusion's foreground colour under a dip is the body's own
colour, so it carries no evidence of see-through there (a composite would, but no Layer
Diffusion caller has one).

Every size defaults to a fraction of the shorter side, so the same defaults work from 256 to
4096 pixels. Deterministic; OpenCV connected components, morphology and distance transforms,
linear in the pixel count (``benchmarks/bench_refine.py`` prints the speed against the
five-step yardstick filter; ``benchmarks/bench_refine_quality.py`` the quality, band first, and the
leave-one-family-out choice of the tuned numbers; docs/refinement.md has both).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from ..base.validation import as_alpha
from .refine_params import REFINE_PRESETS, RefineParams, preset_params

__all__ = ["RefineParams", "RefineResult", "FIX_KINDS", "REFINE_PRESETS", "preset_params", "refine_alpha",
           "true_background"]

#: Up to this many labels a table look-up compares label by label (a speed choice only: both
#: give the same image; a comparison and an OR cost about a tenth of a gather each).
FEW_LABELS = 4

FIX_KINDS = {1: "interior", 2: "pinhole", 3: "debris", 4: "frame_fade"}
_KIND_CODE = {name: code for code, name in FIX_KINDS.items()}


@dataclass(frozen=True)
class RefineResult:
    """What :func:`refine_alpha` returns; unpacks as ``alpha, changed, stats``.

    Attributes
    ----------
    alpha : float32 ndarray [H, W], 0..1
        The refined alpha.
    changed : bool ndarray [H, W]
        Pixels whose value changed (by more than half an 8-bit step).
    stats : dict
        JSON-serialisable statistics (see :func:`refine_alpha`).
    fix_kind : uint8 ndarray [H, W]
        0 for untouched pixels, else the repair applied (codes in ``FIX_KINDS``).
    background : bool ndarray [H, W]
        The true background found in step 1.
    uncertain : bool ndarray [H, W]
        Pixels kept as they were because the prior cannot tell a genuine soft region from an
        artifact there (flat translucency deep inside the body, a veil, a translucent volume).
    """

    alpha: np.ndarray
    changed: np.ndarray
    stats: dict
    fix_kind: np.ndarray = field(repr=False)
    background: np.ndarray = field(repr=False)
    uncertain: np.ndarray = field(repr=False, default=None)

    def __iter__(self):
        return iter((self.alpha, self.changed, self.stats))


def _components(mask: np.ndarray, with_areas: bool = True) -> tuple[int, np.ndarray, np.ndarray | None]:
    """8-connected components of a bool mask: (count including label 0, labels, area per
    label, or None without ``with_areas``). Labels are 16-bit where they fit (faster to count
    and to look up), else 32-bit; plain labelling and a histogram beat OpenCV's labelling with
    statistics four times over."""
    try:
        count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_16U)
        if count <= 65535:
            if not with_areas:
                return count, labels, None
            # calcHist counts in float32, exact up to 2**24 per bin: histograms of row bands
            # of at most that many pixels, added as integers.
            rows = max(1, (1 << 24) // mask.shape[1])
            areas = np.zeros(count, np.int64)
            for top in range(0, mask.shape[0], rows):
                band = cv2.calcHist([labels[top:top + rows]], [0], None, [count], [0, count])
                areas += np.rint(band.ravel()).astype(np.int64)
            return count, labels, areas
    except cv2.error:  # more components than 16 bits can label
        pass
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return count, labels, np.bincount(labels.ravel(), minlength=count) if with_areas else None


def _lookup(lut: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Bool image ``lut[labels]``. A table that names a few labels, or all but a few, is
    compared label by label (a comparison is a tenth of a gather; enclosed dips are all the
    components but the few that touch the background); otherwise a uint8 table, through
    cv2.LUT up to 256 labels, else np.take (a fraction of fancy indexing)."""
    named = np.flatnonzero(lut)
    if named.size <= FEW_LABELS:
        found = np.zeros(labels.shape, bool)
        for label in named:
            found |= labels == int(label)  # a Python int keeps the comparison 16-bit
        return found
    unnamed = np.flatnonzero(~lut)
    if unnamed.size <= FEW_LABELS:
        found = np.ones(labels.shape, bool)
        for label in unnamed:
            found &= labels != int(label)
        return found
    table = lut.view(np.uint8) if lut.dtype == bool else lut.astype(np.uint8)
    if table.size <= 256:  # labels fit in 8 bits: OpenCV's table look-up, about half np.take's time
        return cv2.LUT(labels.astype(np.uint8), np.pad(table, (0, 256 - table.size))).view(bool)
    return np.take(table, labels).view(bool)


def _edges(image: np.ndarray) -> np.ndarray:
    """The four border lines of ``image`` concatenated (top, bottom, left, right)."""
    return np.concatenate((image[0], image[-1], image[:, 0], image[:, -1]))


def _background(codes: np.ndarray, level_code: int, hole_min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """True background (bool) and one seed pixel per background component ([k, 2] rows, cols)."""
    count, labels, areas = _components(codes <= level_code)
    height, width = codes.shape
    edges = _edges(labels)
    border, first = np.unique(edges, return_index=True)
    keep = areas >= max(1, hole_min_area)
    keep[border] = True
    keep[0] = False
    if not keep.any():
        return np.zeros(codes.shape, bool), np.zeros((0, 2), np.intp)
    # Border components: their first pixel along the edges (top, bottom, left, right).
    rows = np.concatenate((np.zeros(width, np.intp), np.full(width, height - 1), np.arange(height), np.arange(height)))
    cols = np.concatenate((np.arange(width), np.arange(width), np.zeros(height, np.intp), np.full(height, width - 1)))
    seeds = [(rows[i], cols[i]) for label, i in zip(border, first) if label > 0]
    holes = keep.copy()
    holes[border] = False
    for label in np.flatnonzero(holes):  # the few large enclosed holes
        seeds.append(np.unravel_index(int(np.argmax(labels == label)), codes.shape))
    return _lookup(keep, labels), np.array(seeds, np.intp)


def true_background(alpha, background_level: float = 2.0 / 255.0, hole_min_area: int = 16) -> np.ndarray:
    """Near-zero pixels 8-connected to the border, plus enclosed near-zero holes of at least
    ``hole_min_area`` pixels.

    Parameters
    ----------
    alpha : ndarray [H, W], 0..1 (uint8 accepted)
    background_level : float
        Alpha at or below which a pixel may be background.
    hole_min_area : int
        Minimum area (pixels) of an enclosed hole that counts as background.

    Returns
    -------
    bool ndarray [H, W]
    """
    codes = cv2.convertScaleAbs(as_alpha(alpha), alpha=255.0)
    return _background(codes, int(np.floor(background_level * 255.0 + 1e-6)), hole_min_area)[0]


def _soft(codes: np.ndarray, background_code: int) -> np.ndarray:
    """Pixels below the noise level of opaque: as far from 255 as the background's noise is
    from 0 (Layer Diffusion's noise is the same few codes at both ends). A pixel within the
    noise of opaque hides the background as well as an opaque one."""
    return codes < 255 - background_code


def _seen(labels: np.ndarray, count: int, see_through: np.ndarray) -> np.ndarray:
    """Per label: whether some pixel of it is in ``see_through`` (label 0 never). ``labels``
    and ``see_through`` are images or the same pixel list."""
    seen = np.zeros(count, bool)
    seen[labels[see_through]] = True
    seen[0] = False
    return seen


def _hit(labels: np.ndarray, seeds: np.ndarray, count: int) -> np.ndarray:
    """Per label: whether it holds a seed pixel (label 0 never)."""
    hit = np.zeros(count, bool)
    hit[labels[seeds[:, 0], seeds[:, 1]]] = True
    hit[0] = False
    return hit


class _Pixels(NamedTuple):
    """Pixels of a mask as parallel arrays, grouped by label (ascending)."""
    labels: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def _pixels_by_label(labels: np.ndarray, mask: np.ndarray) -> _Pixels:
    """The pixels of ``mask`` (a few percent of the image: the enclosed dips) with their labels,
    sorted by label (a radix sort on 16-bit labels)."""
    points = cv2.findNonZero(mask.view(np.uint8))
    if points is None:
        empty = np.zeros(0, np.intp)
        return _Pixels(empty, empty.astype(np.int32), empty.astype(np.int32))
    points = points.reshape(-1, 2)
    found = labels[points[:, 1], points[:, 0]]
    order = np.argsort(found, kind="stable")
    return _Pixels(found[order].astype(np.intp), points[order, 1], points[order, 0])


def _crowded(labels: np.ndarray, enclosed_lut: np.ndarray, inside: np.ndarray, radius: float) -> np.ndarray:
    """Per label: an enclosed component with another enclosed component within ``2 * radius``
    (pockets of hair texture come in groups; a speck or pinhole in a solid body is alone).
    Two components are that close where some pixel lies within ``radius`` of both: there the
    largest and the smallest enclosed label within ``radius`` differ. ``inside`` is the mask of
    the enclosed labels."""
    crowded = np.zeros(enclosed_lut.size, bool)
    if np.count_nonzero(enclosed_lut) < 2:
        return crowded
    # Within a square of half-side ``radius`` (separable, so fast at any size), on the bounding
    # box of the enclosed pixels grown by that half-side: no pixel beyond it has one in reach.
    half = int(np.ceil(radius))
    size = 2 * half + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    left, top, box_width, box_height = cv2.boundingRect(inside.view(np.uint8))
    rows = slice(max(top - half, 0), top + box_height + half)
    cols = slice(max(left - half, 0), left + box_width + half)
    labels, inside = labels[rows, cols], inside[rows, cols]
    if labels.dtype == np.uint16:
        # All ones (keep the label) inside, zero (or 65535, above every label) outside.
        keep = np.subtract(0, inside, dtype=np.uint16)
        highest = cv2.dilate(labels & keep, kernel)
        lowest = cv2.erode(labels | ~keep, kernel)
    else:  # float labels: OpenCV's morphology has no 32-bit integer type (exact below 2**24)
        highest = cv2.dilate(np.where(inside, labels, 0).astype(np.float32), kernel)
        lowest = cv2.erode(np.where(inside, labels, enclosed_lut.size).astype(np.float32), kernel)
    # With no enclosed label near, highest is 0 and lowest above every label; with one, they
    # are equal; with two or more, lowest < highest.
    between = np.flatnonzero(lowest < highest)
    crowded[highest.ravel()[between].astype(np.intp)] = True
    crowded[lowest.ravel()[between].astype(np.intp)] = True
    crowded[0] = False
    return crowded


def _solid_surroundings(dips: _Pixels, shape: tuple[int, int], areas: np.ndarray, soft: np.ndarray,
                        background: np.ndarray, reach: float, fraction: float) -> np.ndarray:
    """Per label: an enclosed dip (``dips``: their pixels by label) whose surroundings hold less
    than ``fraction`` of other soft pixels: in its bounding box grown by ``reach``, ``soft``
    pixels (not true background) other than its own, over the portrait's pixels other than its
    own. Hair brings soft company within the reach (other pockets, strand edges); Layer
    Diffusion's blotches and speckle sit in solid skin and cloth. A box, not a disc: a few
    summed-area look-ups per dip, whatever the reach."""
    solid = np.zeros(areas.size, bool)
    if fraction <= 0.0 or dips.labels.size == 0:
        return solid
    starts = np.flatnonzero(np.r_[True, dips.labels[1:] != dips.labels[:-1]])
    which = dips.labels[starts]
    height, width = shape
    grow = int(np.ceil(reach))
    top = np.maximum(np.minimum.reduceat(dips.rows, starts) - grow, 0)
    bottom = np.minimum(np.maximum.reduceat(dips.rows, starts) + grow + 1, height)
    left = np.maximum(np.minimum.reduceat(dips.cols, starts) - grow, 0)
    right = np.minimum(np.maximum.reduceat(dips.cols, starts) + grow + 1, width)

    def box_sum(mask):
        summed = cv2.integral(mask.view(np.uint8))
        return summed[bottom, right] - summed[top, right] - summed[bottom, left] + summed[top, left]

    # The true background lies inside the soft pixels: soft company = soft - background.
    in_background = box_sum(background)
    own = areas[which]
    others_soft = box_sum(soft) - in_background - own
    others = (bottom - top) * (right - left) - in_background - own
    solid[which] = others_soft < fraction * np.maximum(others, 1)
    return solid


def _plateaus(codes: np.ndarray, candidates: np.ndarray, enclosed: np.ndarray, radius: float,
              step: float) -> np.ndarray:
    """Candidate pixels whose neighbourhood (a square of half-side ``radius``) dips less than
    ``step`` (alpha) below them (on a plateau or a gentle slope, not at a steep edge), in flat
    areas at least that square wide or in enclosed dips: dimming and banding cover areas and
    speckle sits in a solid body, while a near-opaque strand is a line that reaches the soft
    edge."""
    size = 2 * max(1, int(round(radius))) + 1
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    # Integer codes: below the step is below its ceiling (a float bound would compare in float64).
    flat = candidates & (cv2.subtract(codes, cv2.erode(codes, square)) < math.ceil(step * 255.0))
    return cv2.morphologyEx(flat.view(np.uint8), cv2.MORPH_OPEN, square).view(bool) | (flat & enclosed)


def _with_rims(plateau: np.ndarray, radius: float) -> np.ndarray:
    """``plateau`` grown by ``radius`` (a square): the flatness test fails on a plateau's rim,
    where the step down to the plateau lies within the radius, yet the rim's near-opaque pixels
    belong to the same dimmed area."""
    size = 2 * max(1, int(round(radius))) + 1
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    return cv2.dilate(plateau.view(np.uint8), square).view(bool)


def _frame_fade(codes: np.ndarray, fix_kind: np.ndarray, deep: np.ndarray, depth: int, min_code: int,
                anchor_code: int) -> np.ndarray:
    """Pixels within ``depth`` of a border whose line toward the interior reaches a
    near-opaque anchor (at least ``anchor_code``) at ``depth`` through pixels of at least
    ``min_code`` (pixels with a ``fix_kind`` count as opaque): the body continues out of the
    frame, so a fade toward the border there is an error. Only ``deep`` pixels from
    ``min_code`` to below opaque that were not filled as pinholes count; only the border strips
    are computed."""
    fade = np.zeros(codes.shape, bool)
    if depth <= 0:
        return fade
    for orient in (lambda m: m, lambda m: m[::-1], lambda m: m.T, lambda m: m.T[::-1]):
        d = min(depth, orient(codes).shape[0] - 1)
        if d <= 0:
            continue
        kinds, strip_codes = orient(fix_kind)[:d + 1], orient(codes)[:d + 1]
        strip = np.where(kinds > 0, np.uint8(255), strip_codes)
        run = np.logical_and.accumulate((strip >= min_code)[::-1], axis=0)[::-1]
        candidates = run[:d] & (strip[d] >= anchor_code)[None, :]
        if candidates.any():
            strip_codes, kinds = strip_codes[:d], kinds[:d]
            eligible = (orient(deep)[:d] & (strip_codes >= min_code) & (strip_codes < 255)
                        & (kinds != _KIND_CODE["pinhole"]))
            orient(fade)[:d] |= candidates & eligible
    return fade


def _debris(codes: np.ndarray, background: np.ndarray, clearance: float,
            keep_fraction: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Islands of present pixels farther than ``clearance`` from the portrait (the largest
    component) and smaller than ``keep_fraction`` of it: their pixels (rows, cols), or None.
    Debris is a few pixels: a list, not an image."""
    count, labels, areas = _components(np.greater(codes > 0, background))
    if count <= 2:
        return None
    areas[0] = 0
    portrait = int(np.argmax(areas))
    minor = areas < keep_fraction * areas[portrait]
    minor[0] = False
    if not minor.any():
        return None
    body = labels == portrait
    if np.count_nonzero(minor) == count - 2:  # every other component is minor (the usual case)
        islands = np.greater(labels > 0, body)
    else:
        islands = _lookup(minor, labels)
    points = cv2.findNonZero(islands.view(np.uint8)).reshape(-1, 2)  # islands are few pixels
    cols, rows = points[:, 0], points[:, 1]
    island_labels = labels[rows, cols].astype(np.intp)
    # An island pixel is near when the portrait lies within the clearance (a square of half-side
    # ``clearance`` around it: its portrait pixels counted from one summed-area table).
    height, width = codes.shape
    grow = int(np.ceil(clearance))
    top, left = np.maximum(rows - grow, 0), np.maximum(cols - grow, 0)
    bottom, right = np.minimum(rows + grow + 1, height), np.minimum(cols + grow + 1, width)
    # The table only over the islands' squares (islands are few and often in one corner).
    first_row, first_col = top.min(), left.min()
    summed = cv2.integral(body[first_row:bottom.max(), first_col:right.max()].view(np.uint8))
    top, bottom, left, right = top - first_row, bottom - first_row, left - first_col, right - first_col
    inside = summed[bottom, right] - summed[top, right] - summed[bottom, left] + summed[top, left]
    near = np.zeros(count, bool)
    near[island_labels[inside > 0]] = True
    debris = minor & ~near
    selected = debris[island_labels]
    if not selected.any():
        return None
    return rows[selected], cols[selected]


def refine_alpha(alpha, params: RefineParams | None = None, **overrides) -> RefineResult:
    """Repair Layer Diffusion's alpha with the portrait connectivity prior (see the module).

    Parameters
    ----------
    alpha : ndarray [H, W]
        Float in 0..1 (1 = opaque), or uint8 / uint16 / bool. NaN or inf raise ``ValueError``.
    params : RefineParams, optional
        Thresholds; keyword ``overrides`` replace single fields (``reach=20``).

    Returns
    -------
    RefineResult
        ``alpha`` (float32 [H, W], 0..1), ``changed`` (bool [H, W]), ``stats`` (dict),
        ``fix_kind`` (uint8 [H, W], codes in ``FIX_KINDS``), ``background`` (bool [H, W]),
        ``uncertain`` (bool [H, W]).

        ``stats`` has: ``height``, ``width``, ``semi_before`` and ``semi_after`` (pixels neither
        0 nor 1 at 8-bit precision), ``changed_pixels``, ``changed_fraction``, one pixel count per
        repair (``interior_fixed``, ``pinholes_filled``, ``debris_removed``,
        ``frame_fade_fixed``), ``uncertain_pixels`` and ``uncertain_fraction`` (of the
        portrait's pixels: not true background), ``background_fraction``, ``band_pixels``
        (semi-transparent pixels kept as genuine), ``no_background`` (True when nothing touches
        the border, so only the frame-fade repair could apply) and ``params`` (the resolved
        thresholds).

    Notes
    -----
    Deterministic; the input is never modified. An alpha with no true background gives no
    connectivity evidence, so only the frame-fade repair can apply.
    """
    source = as_alpha(alpha)
    if params is None:
        params = RefineParams(**overrides)  # checked when made
    elif overrides:
        params = RefineParams(**{**asdict(params), **overrides})
    height, width = source.shape
    p = params.resolved(height, width)
    codes = cv2.convertScaleAbs(source, alpha=255.0)  # nearest 8-bit code of each pixel
    background_code = int(np.floor(p["background_level"] * 255.0 + 1e-6))
    see_code = int(np.ceil(p["see_through_level"] * 255.0 - 1e-6))
    fill_code = int(np.ceil(p["deep_fill_level"] * 255.0 - 1e-6))

    not_opaque = codes < 255
    # Noise-level pixels wall dips in: a chain of them must not join a patch to the soft edge.
    soft = _soft(codes, background_code)
    background, seeds = _background(codes, background_code, p["hole_min_area"])
    has_background = len(seeds) > 0
    fix_kind = np.zeros(source.shape, np.uint8)
    uncertain = np.zeros(source.shape, bool)
    deep = np.ones(source.shape, bool)

    if has_background:
        radius, reach = p["solid_radius"], p["reach"]
        # Enclosed dips: soft components the background does not reach (step 3).
        count, labels, _ = _components(soft, with_areas=False)
        enclosed_lut = ~_hit(labels, seeds, count)
        enclosed_lut[0] = False
        enclosed = _lookup(enclosed_lut, labels)
        # The dips are a few percent of the image: step 3 works on their pixel list, and
        # counts their areas there (no other soft component's area is used).
        dips = _pixels_by_label(labels, enclosed)
        areas = np.bincount(dips.labels, minlength=count)
        dip_codes = codes[dips.rows, dips.cols]
        isolated_lut = enclosed_lut & ~_crowded(labels, enclosed_lut, enclosed, radius)
        solid_lut = enclosed_lut & _solid_surroundings(dips, codes.shape, areas, soft, background, reach,
                                                       p["soft_company_fraction"])
        small_lut = areas < (2.0 * radius) ** 2  # speckle and pinholes
        wide_lut = areas >= reach ** 2  # wider than any pocket between strands
        # Specks: small dips the background does not clearly show through anywhere (a gap
        # between strands is see-through somewhere; a speck of dimming is not).
        speck_lut = enclosed_lut & small_lut & ~_seen(dips.labels, count, dip_codes < see_code)
        isolated = isolated_lut[dips.labels]
        small = small_lut[dips.labels]
        # 2. See-through evidence: what the background reaches through see-through pixels (the
        # gaps between strands), and enclosed see-through regions among other dips that are
        # too wide for a pinhole (pockets of a hair mass; a lone one is a hole in the body).
        count, labels, areas = _components(codes < see_code)
        evidence_lut = _hit(labels, seeds, count) | (areas >= (2.0 * radius) ** 2)
        evidence_lut[0] = False
        no_evidence = _lookup(~evidence_lut, labels)
        no_evidence[dips.rows[isolated], dips.cols[isolated]] = True
        distance = cv2.distanceTransform(no_evidence.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        deep = distance > reach
        # 3. A dip alone in a solid body is speckle or a pinhole when small, near-opaque or
        # clear (a clear hole smaller than a true background hole); a larger dim one might be a
        # pocket walled in by thick strands: uncertain. Beyond the reach of see-through
        # background: speckle, near-opaque dips and blotches wider than a pocket are filled; a
        # dim dip of pocket size is uncertain.
        dip_deep = deep[dips.rows, dips.cols]
        dip_near_opaque = dip_codes >= fill_code
        dip_errors = isolated & (small | dip_near_opaque | (dip_codes <= background_code))
        dip_errors |= dip_deep & (small | dip_near_opaque | wide_lut[dips.labels])
        # A dip with almost no soft company within the reach is a hole in a solid body at any
        # level (a blotch in the skin, a pinhole beside other speckle); a speck is dimming.
        dip_errors |= (solid_lut | speck_lut)[dips.labels]
        errors = np.zeros(source.shape, bool)
        errors[dips.rows, dips.cols] = dip_errors
        uncertain[dips.rows, dips.cols] = (isolated | dip_deep) & ~dip_errors
        # 4. Near-opaque plateaus away from the see-through background: Layer Diffusion's
        # dimming, banding and interior speckle are flat; near-opaque hair is textured (a strand
        # edge drops steeply within a few pixels) and stays.
        near_opaque = (codes >= fill_code) & not_opaque
        plateau = _plateaus(codes, near_opaque, enclosed, radius, p["flat_step"])
        far = distance > 2.0 * radius
        errors |= _with_rims(plateau & far, radius) & near_opaque & far
        # Noise-level pixels away from the open soft region (the edge, the gaps reached from the
        # background) are opaque ones with noise.
        # (For bool images np.greater(a, b) is a & ~b in one pass.)
        soft_portrait = np.greater(soft, background)
        open_soft = np.greater(soft_portrait, enclosed)
        beside_open = cv2.dilate(open_soft.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
        errors |= np.greater(np.greater(not_opaque, soft), beside_open)
        # What the reach does not explain and no rule repaired: a veil, a translucent volume or
        # a dimming blotch, which the prior cannot tell apart.
        uncertain |= deep & soft_portrait
        uncertain &= ~errors
        pinholes = errors & (codes <= background_code)
        if not p["fix_pinholes"]:
            errors &= ~pinholes
        if not p["fix_interior"]:
            errors &= pinholes
        # Interior 1, pinhole 2 (every pinhole is an error): the sum of two masks, not two
        # masked writes (a masked write costs a few times a full-image add).
        np.add(errors.view(np.uint8), (errors & pinholes).view(np.uint8), out=fix_kind)

    if p["fix_frame_fade"]:
        # 5. Frame fade: deep pixels (the steps above may have filled some as dimming; a fade is
        # their actual cause, and what they report).
        fade = _frame_fade(codes, fix_kind, deep, p["frame_fade_depth"], see_code, fill_code)
        if fade.any():
            np.copyto(fix_kind, _KIND_CODE["frame_fade"], where=fade)
            np.greater(uncertain, fade, out=uncertain)  # uncertain &= ~fade, in place
    debris = None
    if has_background and p["remove_debris"]:
        # 6. Debris.
        debris = _debris(codes, background, 2.0 * p["solid_radius"], p["island_keep_fraction"])
        if debris is not None:
            fix_kind[debris] = _KIND_CODE["debris"]
            uncertain[debris] = False
    # Every repair moves a pixel at least half a code: fills act on codes below 255, debris
    # removal on codes above 0.
    changed = fix_kind != 0
    refined = np.where(changed, np.float32(1.0), source)
    if debris is not None:
        refined[debris] = 0.0
    # Pixels per repair; a comparison and a count per kind (calcHist is slower on uint8).
    counts = [0] + [np.count_nonzero(fix_kind == code) for code in FIX_KINDS]
    semi = (codes > 0) & not_opaque
    semi_after = semi & ~changed
    background_pixels = int(np.count_nonzero(background))
    portrait_pixels = max(1, background.size - background_pixels)
    uncertain_pixels = int(np.count_nonzero(uncertain))
    changed_pixels = int(np.count_nonzero(changed))
    stats = {
        "height": height,
        "width": width,
        "semi_before": int(np.count_nonzero(semi)),
        "semi_after": int(np.count_nonzero(semi_after)),
        "changed_pixels": changed_pixels,
        "changed_fraction": changed_pixels / changed.size,
        "interior_fixed": int(counts[1]),
        "pinholes_filled": int(counts[2]),
        "debris_removed": int(counts[3]),
        "frame_fade_fixed": int(counts[4]),
        "uncertain_pixels": uncertain_pixels,
        "uncertain_fraction": uncertain_pixels / portrait_pixels,
        "background_fraction": float(background_pixels / background.size),
        "band_pixels": int(np.count_nonzero(semi_after & ~uncertain)),
        "no_background": not has_background,
        "params": p,
    }
    return RefineResult(alpha=refined, changed=changed, stats=stats, fix_kind=fix_kind, background=background,
                        uncertain=uncertain)
