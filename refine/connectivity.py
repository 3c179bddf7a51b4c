"""Connectivity-aware alpha refinement for Layer Diffusion portraits.

A portrait's genuine transition region (hair strands, soft edges) is a band along the outer
contour that the true background can reach. Layer Diffusion's alpha breaks this prior in four
predictable ways, and :func:`refine_alpha` repairs each:

``interior``
    semi-transparent speckle and blotches inside the body (dark clothing, hair, beards),
    including speckle chained to the genuine band: set to opaque.
``pinhole``
    small fully transparent holes inside the body (specular highlights): set to opaque.
``debris``
    faint floating islands in the background, not connected to the portrait: set to 0.
``frame_fade``
    the fade where the body leaves the frame: extended to opaque up to the border.

The algorithm, on the alpha alone (no colour is needed):

1. True background ``B``: near-zero pixels 8-connected to the image border, plus large enclosed
   near-zero holes (the gap between an arm and the torso), large meaning the hole's near-zero
   core or the enclosed faint bowl around it (below ``faint_level``) covers ``hole_min_area``.
2. Gaps: pixels below ``gap_level`` that the background reaches through pixels below
   ``gap_level`` within ``reach_depth`` of ``B`` -- the see-through holes between hair strands.
   Strands thinner than ``strand_width`` are opened away first, so a curl lying across a soft
   edge does not wall off the gaps behind it. Pixels below ``faint_level`` that the background
   reaches through pixels below ``faint_level`` are gaps however deep they lie: a soft valley
   between a raised hand and the head is background seen through soft edges, not a dip.
3. Band: non-opaque pixels reachable from those gaps through non-opaque pixels while staying
   within ``band_width`` of ``B`` or within ``gap_rim`` of a gap, plus the steadily climbing
   ramps of wide soft edges (pixels below ``ramp_levels[-1]`` that the background reaches
   through pixels no more opaque than the next level, within ``ramp_depth``). The band is
   kept as it is, except band speckle: near-opaque pixels darker than all their neighbours
   (a genuine soft edge always has a more transparent neighbour toward the background), and
   shelves: patches that hardly climb above their darkest neighbour (a blotch dimming the body
   where it meets the outline is flat; a genuine soft edge climbs steeply toward the body).
   A one-pixel line of slowly climbing pixels in the middle of a steady five-pixel ramp is the
   ridge of a strand rising into the body, not a shelf. Near the frame, a long and even
   stretch of border pixels below the first ramp level, with the body opaque a little inside,
   is a soft edge running along the frame: ramps may start there, as from the background.
4. Everything else that is neither opaque nor background is an error and is filled to 1:
   semi-transparent speckle and blotches (``interior``) and enclosed zero holes (``pinhole``).
   Where pixels filled because the band stops meet the kept band, they rise to 1 over
   ``taper_width`` pixels instead of jumping (no stair step along the band's inner limit);
   wide tapers are grown at a coarser scale, so the time stays linear in the pixel count.
5. Frame fade: near each border, where the body continues out of the frame (an opaque
   anchor ``frame_fade_depth`` inside) and the border pixel is still at least
   ``fade_min_alpha``, a fade toward the border is filled to 1. (Ramps may run along the
   frame at any length: a soft edge that runs along the border is kept.)
6. Debris: islands not connected to the portrait that are faint or tiny are set to 0, except
   wisps within a few pixels of the portrait (hair fringe parted from it by near-zero pixels).

Calibration: the defaults were tuned on the calibration halves of the two benchmark families in
``pipeline/synthetic_families`` (at 384, 640, 1024 and 2048 pixels) and checked on the real
images the tests use; the families' evaluation halves are only reported
(``benchmarks/bench_refine_quality.py``; figures in ``docs/refinement.md``).

All sizes default to fractions of the image's shorter side, so the same defaults work from
256 to 4096 pixels. The function is deterministic and uses OpenCV's connected components and
distance transforms; ``benchmarks/bench_refine.py`` prints its speed against the issue-9 yardstick.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .refine_params import REFINE_PRESETS, RefineParams, preset_params
from .validation import HALF_CODE, as_alpha

__all__ = ["RefineParams", "RefineResult", "FIX_KINDS", "REFINE_PRESETS", "preset_params", "refine_alpha",
           "true_background"]
#: Images whose shorter side is at least this are measured at quarter resolution (0: never).
PROXIMITY_SCALE_4_FROM = 1024
#: Islands within this many pixels of the portrait are fringe, not debris.
ISLAND_KEEP_GAP = 3
#: Shelves are measured at a resolution whose shorter side is 1 to 2 times this.
SHELF_WORKING_SIDE = 256
#: A pixel climbing this many 8-bit codes above its darkest neighbour is never a shelf.
SHELF_MAX_CLIMB = 15
#: Shelves grow into rims at most this many times as steep as a shelf may be ...
SHELF_GROW_STEEPER = 1.5
#: ... for this many pixels (at the measuring resolution).
SHELF_GROW_PASSES = 2
#: A shelf pixel needs at least this many shelf pixels among its 8 neighbours.
SHELF_MIN_NEIGHBOURS = 2
#: A one-pixel line of flat pixels in the middle of five pixels that climb at least this many
#: codes at every pixel is the ridge of a strand rising into the body, never a shelf.
SHELF_RAMP_MIN = 10
#: From this many pixels per measuring pixel on (images of 512 pixels and more), shelves are
#: measured at full resolution instead (see ``_shelves_full_res``): at the measuring
#: resolution a blotch a few pixels wide blends with the outline next to it.
SHELF_FULL_RES_FROM = 2
#: ... over windows of at most this radius (larger images at a reduced size).
SHELF_MAX_RADIUS = 4
#: A stretch of the frame at least this fraction of the shorter side long, all below the
#: first ramp level, with the body opaque a frame-fade depth inside, is a soft edge running
#: along the frame ...
BORDER_EDGE_MIN_RUN = 0.07
#: ... and whose codes change by at most this per pixel along it (a soft edge parallel to
#: the frame is even; a blotch where the body leaves the frame dips and rises again).
BORDER_EDGE_MAX_STEP = 8
#: The taper is grown in at most this many 3x3 passes (at a coarser scale for wider tapers).
TAPER_MAX_PASSES = 6

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
    """

    alpha: np.ndarray
    changed: np.ndarray
    stats: dict
    fix_kind: np.ndarray = field(repr=False)
    background: np.ndarray = field(repr=False)

    def __iter__(self):
        return iter((self.alpha, self.changed, self.stats))


def _label(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """8-connected components of a uint8 mask: (count including label 0, labels).

    16-bit labels are faster to compute and to compare; images with more than 65535
    components (noise) fall back to 32-bit. OpenCV refuses to overflow 16-bit labels, and the
    count check also guards builds that would not.
    """
    try:
        count, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_16U)
        if count <= 65535:
            return count, labels
    except cv2.error:
        pass
    return cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)


def _select(labels: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels whose label is in ``wanted`` (1-D int array)."""
    # Same dtype as the labels, so comparisons run on 16-bit data when the labels are 16-bit.
    wanted = np.asarray(wanted)[np.asarray(wanted) > 0].astype(labels.dtype)
    if wanted.size == 0:
        return np.zeros(labels.shape, bool)
    if wanted.size <= 6:
        # A few comparisons beat a full-image gather (the usual case: one background).
        out = labels == wanted[0]
        for label in wanted[1:]:
            out |= labels == label
        return out
    lut = np.zeros(int(labels.max()) + 1, bool)
    lut[wanted] = True
    return lut[labels]


def _background_with_seeds(alpha: np.ndarray, background_level: float, hole_min_area: int,
                           soft_hole_level: float = 0.0):
    """True background and one seed pixel (row, col) per background component.

    Enclosed near-zero holes count when they cover ``hole_min_area`` pixels, or when the
    enclosed bowl of pixels below ``soft_hole_level`` around them does: a gap between an arm
    and the torso seen through soft edges has a small clear core in a wide faint bowl; a
    pinhole is small at both levels.
    """
    low = (alpha <= background_level).view(np.uint8)
    _, labels = _label(low)
    height, width = labels.shape
    edges = _edges(labels)
    border, first = np.unique(edges, return_index=True)
    background = _select(labels, border)
    # One seed per border component: its first pixel along the edges.
    edge_rows = np.concatenate((np.zeros(width, int), np.full(width, height - 1), np.arange(height), np.arange(height)))
    edge_cols = np.concatenate((np.arange(width), np.arange(width), np.zeros(height, int), np.full(height, width - 1)))
    seeds = [(int(edge_rows[i]), int(edge_cols[i])) for label, i in zip(border, first) if label > 0]
    enclosed = np.greater(low.view(bool), background)
    points = cv2.findNonZero(enclosed.view(np.uint8))  # enclosed pixels are few: find them once
    if points is None:
        return background, seeds
    points = points.reshape(-1, 2)
    core_labels, first, sizes = np.unique(labels[points[:, 1], points[:, 0]], return_index=True,
                                          return_counts=True)
    minimum = max(1, hole_min_area)
    large = sizes >= minimum
    holes = [(int(label), (int(points[i, 1]), int(points[i, 0]))) for label, i in zip(core_labels[large], first[large])]
    if soft_hole_level > background_level and not large.all():
        small = ~large
        holes += _soft_holes(alpha, background, core_labels[small], points[first[small]], soft_hole_level, minimum)
    if holes:
        background |= _select(labels, np.array([label for label, _ in holes]))
        seeds += [seed for _, seed in holes]
    return background, seeds


def _soft_holes(alpha, background, core_labels, core_points, level: float, minimum: int) -> list:
    """(label, seed pixel) of each enclosed near-zero core (one pixel (col, row) of each in
    ``core_points``) whose bowl (the pixels below ``level`` connected to it, not background,
    off the border) covers at least ``minimum`` pixels. Each bowl is flood-filled once."""
    bowls = np.greater(alpha < level, background).view(np.uint8)  # 1: in a bowl not filled yet
    height, width = bowls.shape
    areas = {}  # fill value (2..255) -> area of the bowl filled with it, 0 when on the border
    found = []
    for label, (col, row) in zip(core_labels, core_points):
        row, col = int(row), int(col)
        if int(bowls[row, col]) not in areas:
            if len(areas) == 254:  # out of fill values: forget the bowls filled so far
                np.copyto(bowls, np.uint8(1), where=bowls > 1)
                areas.clear()
            value = 2 + len(areas)
            area, _, _, (x, y, w, h) = cv2.floodFill(bowls, None, (col, row), value, flags=8)
            areas[value] = 0 if x == 0 or y == 0 or x + w == width or y + h == height else area
        if areas[int(bowls[row, col])] >= minimum:
            found.append((int(label), (row, col)))
    return found


def true_background(alpha, background_level: float = 2.0 / 255.0, hole_min_area: int = 16,
                    soft_hole_level: float = 0.0) -> np.ndarray:
    """Near-zero pixels 8-connected to the border, plus enclosed near-zero holes of at least
    ``hole_min_area`` pixels (or, with ``soft_hole_level`` above ``background_level``, whose
    enclosed bowl of pixels below that level is at least that large).

    Parameters
    ----------
    alpha : ndarray [H, W], 0..1 (uint8 accepted)
    background_level : float
        Alpha at or below which a pixel may be background.
    hole_min_area : int
        Minimum area (pixels) of an enclosed hole that counts as background.
    soft_hole_level : float
        0 (default) measures holes at ``background_level`` only; ``refine_alpha`` passes its
        ``faint_level``.

    Returns
    -------
    bool ndarray [H, W]
    """
    return _background_with_seeds(as_alpha(alpha), background_level, hole_min_area, soft_hole_level)[0]


def _edges(image: np.ndarray) -> np.ndarray:
    """The four border lines of ``image`` concatenated (top, bottom, left, right)."""
    return np.concatenate((image[0], image[-1], image[:, 0], image[:, -1]))


def _reach(seeds: list, passable: np.ndarray, border_seeds: np.ndarray | None = None) -> np.ndarray:
    """Pixels of ``passable`` 8-connected to one of the seed pixels (which must be passable),
    or to a border pixel where ``border_seeds`` (bool [H, W]) is set."""
    _, labels = _label(passable.view(np.uint8))
    wanted = np.array([labels[r, c] for r, c in seeds], dtype=np.int64)
    if border_seeds is not None:
        wanted = np.concatenate((wanted, _edges(labels)[_edges(border_seeds)]))
    return _select(labels, np.unique(wanted))


class _Proximity:
    """Distances (pixels) to the ``True`` pixels of a mask, queried by threshold.

    Images of at least 512 pixels a side are measured at half resolution: the thresholds
    applied here are several pixels wide, so one pixel of slack costs nothing, and the
    transform and the comparisons run four times faster.
    """

    def __init__(self, mask: np.ndarray):
        self.shape = mask.shape
        height, width = mask.shape
        short = min(height, width)
        self.scale = PROXIMITY_SCALE_4_FROM and short >= PROXIMITY_SCALE_4_FROM and 4 or (2 if short >= 512 else 1)
        if self.scale == 1:
            self.coverage = None
            far = (~mask).view(np.uint8)
        else:
            half = (width + self.scale - 1) // self.scale, (height + self.scale - 1) // self.scale
            # Fraction of each coarse pixel's fine pixels in the mask, 0..255: "any" keeps
            # a coarse pixel in the mask when one fine pixel is.
            self.coverage = cv2.resize(mask.view(np.uint8) * np.uint8(255), half, interpolation=cv2.INTER_AREA)
            far = (self.coverage == 0).view(np.uint8)
        self.distance = cv2.distanceTransform(far, cv2.DIST_L2, cv2.DIST_MASK_5)

    def coarse_within(self, radius: float) -> np.ndarray:
        """Bool mask, at the measuring resolution, of pixels at most ``radius`` (full-resolution
        pixels) from the mask."""
        return self.distance <= radius / self.scale

    def upsample(self, coarse: np.ndarray) -> np.ndarray:
        """A bool mask at the measuring resolution brought back to [H, W]."""
        if self.scale == 1:
            return coarse
        height, width = self.shape
        return cv2.resize(coarse.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(bool)

    def upsample_codes(self, coarse: np.ndarray) -> np.ndarray:
        """A uint8 image at the measuring resolution brought back to [H, W] (nearest)."""
        if self.scale == 1:
            return coarse
        height, width = self.shape
        return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)

    def deepest(self, among: np.ndarray) -> tuple[int, int]:
        """The pixel of ``among`` farthest from the mask."""
        row, col = np.unravel_index(int(np.argmax(self.distance)), self.distance.shape)
        row, col = min(row * self.scale, self.shape[0] - 1), min(col * self.scale, self.shape[1] - 1)
        if among[row, col]:
            return row, col
        # The deepest spot is a pinhole: search the full-resolution candidates instead.
        coarse = cv2.resize(self.distance, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_NEAREST)
        return np.unravel_index(int(np.argmax(coarse * among)), self.shape)


def _debris(alpha: np.ndarray, background: np.ndarray, depth: _Proximity, p: dict) -> np.ndarray:
    """Islands of non-background pixels that are not part of the portrait.

    The portrait is the visible component holding the pixel deepest inside (farthest from
    the background); islands big enough relative to it are kept, and so are wisps within
    ``ISLAND_KEEP_GAP`` pixels of it (hair fringe parted from it by near-zero pixels only).
    """
    visible = np.greater(alpha > HALF_CODE, background)  # present and not background
    count, labels = _label(visible.view(np.uint8))
    if count <= 2:
        return np.zeros(alpha.shape, bool)
    deepest = depth.deepest(visible)
    portrait = labels == labels[deepest]
    # Islands are few pixels: find them once and look everything up by position (a boolean
    # lookup scans the whole image each time).
    points = cv2.findNonZero(np.greater(visible, portrait).view(np.uint8))
    if points is None:
        return np.zeros(alpha.shape, bool)
    points = points.reshape(-1, 2)
    cols, rows = points[:, 0], points[:, 1]
    island_labels = labels[rows, cols]
    areas = np.bincount(island_labels, minlength=count)
    reach = 2 * ISLAND_KEEP_GAP + 1
    near_portrait = cv2.dilate(portrait.view(np.uint8), np.ones((reach, reach), np.uint8))
    wisp = np.zeros(count, bool)
    wisp[island_labels[near_portrait[rows, cols] > 0]] = True
    strong = np.zeros(count, bool)
    strong[island_labels[alpha[rows, cols] >= p["debris_max_alpha"]]] = True
    portrait_area = np.count_nonzero(visible) - island_labels.size
    small = areas < p["island_min_area"]
    minor = areas < max(1.0, p["keep_island_fraction"] * portrait_area)
    is_debris = (areas > 0) & minor & (small | ~strong) & ~wisp
    debris = np.zeros(alpha.shape, bool)
    debris[rows, cols] = is_debris[island_labels]
    return debris


def _frame_fade(refined: np.ndarray, eligible, opaque_level: float, depth: int, min_alpha: float) -> np.ndarray:
    """Pixels within ``depth`` of a border whose line toward the interior reaches an opaque
    anchor at ``depth`` without crossing background: the body continues out of the frame, so
    any fade toward the border there is an error.

    ``eligible(orient, rows)`` returns which pixels of a border strip may be repaired; only the
    strips are ever computed, never the whole image.
    """
    fade = np.zeros(refined.shape, bool)
    if depth <= 0:
        return fade
    # Views that put each border (top, bottom, left, right) at index 0 of axis 0; writes to
    # the view of ``fade`` land in ``fade``.
    for orient in (lambda m: m, lambda m: m[::-1], lambda m: m.T, lambda m: m.T[::-1]):
        strip = orient(refined)
        d = min(depth, strip.shape[0] - 1)
        if d <= 0:
            continue
        present = strip[:d + 1] > HALF_CODE
        # run[i]: every pixel from row i to the anchor row d is present (not background).
        run = np.logical_and.accumulate(present[::-1], axis=0)[::-1]
        # A fade dims an opaque body a little, so it is brightest inside and still at least
        # ``min_alpha`` on the border row; a line whose border pixel is dimmer is a soft edge
        # running along the frame.
        candidates = run[:d] & ((strip[d] >= opaque_level) & (strip[0] >= min_alpha))[None, :]
        if candidates.any():
            orient(fade)[:d] |= candidates & eligible(orient, d)
    return fade


def _coarse_rim(mask: np.ndarray, scale: int, radius: float) -> np.ndarray:
    """Bool mask at 1/``scale`` resolution of pixels within ``radius`` (full-resolution
    pixels, Euclidean) of ``mask``: a dilation by a disc, cheaper than a distance transform
    for the small radii it is used with."""
    if scale == 1:
        coarse = mask.view(np.uint8)
    else:
        height, width = mask.shape
        coarse = cv2.resize(mask.view(np.uint8), ((width + scale - 1) // scale, (height + scale - 1) // scale),
                            interpolation=cv2.INTER_AREA)
        coarse = (coarse > 0).view(np.uint8)
    r = int(radius / scale)
    if r <= 0:
        return coarse.view(bool)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(coarse, disc).view(bool)


def _faint_valleys(opened: np.ndarray, proximity: _Proximity, level: float) -> np.ndarray:
    """Coarse pixels (at the resolution ``proximity`` measures at) below ``level`` that the
    border-connected background reaches through pixels below ``level``, at any depth (on the
    mean code of each coarse pixel, so a valley must be wider than a coarse pixel to count).
    The caller brings them to full size and keeps the pixels there below ``level``."""
    code = int(np.ceil(level * 255.0 - 1e-6))
    if proximity.scale == 1:
        coarse = opened < code
        background = proximity.distance == 0
    else:
        coarse = cv2.resize(opened, proximity.distance.shape[::-1], interpolation=cv2.INTER_AREA) < code
        background = proximity.coverage == 255
    count, labels = _label((coarse | background).view(np.uint8))
    edges = _edges(background)
    if not edges.any():
        return np.zeros(coarse.shape, bool)
    hit = np.zeros(count, bool)
    hit[_edges(labels)[edges]] = True
    return hit[labels]


def _open_thin_strands(codes: np.ndarray, width: int) -> np.ndarray:
    """Grey-scale opening of 8-bit codes: removes bright structures narrower than ``width``."""
    if width <= 1:
        return codes
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (width, width))
    return cv2.morphologyEx(codes, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)


def _box(mask: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    """Slices of the bounding box of ``mask`` grown by ``pad`` pixels, or None when empty:
    local filters then run on that box only."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0 or h == 0:
        return None
    height, width = mask.shape
    return (slice(max(0, y - pad), min(height, y + h + pad)), slice(max(0, x - pad), min(width, x + w + pad)))


def _band_speckle(codes: np.ndarray, candidates: np.ndarray, level: float, passes: int) -> np.ndarray:
    """Near-opaque ``candidates`` darker than all 8 neighbours (speckle chained to the band).

    A genuine soft edge always has a more transparent neighbour toward the background, so a
    strict local minimum at or above ``level`` is an error. Each pass fills the minima found,
    which exposes the next pixel of a speckle chain. Works on the 8-bit ``codes`` of the alpha:
    cheap, and exact for the 8-bit data Layer Diffusion produces.
    """
    level_code = int(np.ceil(level * 255.0 - 1e-6))
    speckle = np.zeros(codes.shape, bool)
    candidates = candidates & (codes >= level_code)
    box = _box(candidates, 2) if passes > 0 else None
    if box is None:
        return speckle
    own, candidates = codes[box], candidates[box].view(np.uint8)
    work = own.copy()
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    for _ in range(passes):
        lowest_neighbour = cv2.erode(work, ring, borderType=cv2.BORDER_REPLICATE)
        speck = cv2.compare(work, lowest_neighbour, cv2.CMP_LT) & candidates  # 1 where a minimum
        if not cv2.countNonZero(speck):
            break
        cv2.max(work, speck * np.uint8(255), dst=work)  # filled: 255 is never below a neighbour again
    speckle[box] = work != own  # exactly the pixels filled above
    return speckle


def _shrink(codes: np.ndarray, factor: int, cache: dict) -> np.ndarray:
    """``codes`` area-averaged by ``factor`` (sides rounded up), computed once per factor in
    ``cache`` (the shelf and ramp tests often measure at the same scale)."""
    if factor == 1:
        return codes
    if factor not in cache:
        height, width = codes.shape
        cache[factor] = cv2.resize(codes, ((width + factor - 1) // factor, (height + factor - 1) // factor),
                                   interpolation=cv2.INTER_AREA)
    return cache[factor]


def _shelves(codes: np.ndarray, candidates: np.ndarray, level: float, rise: float, shrunk: dict) -> np.ndarray:
    """Semi-transparent ``candidates`` at or above ``level`` that rise above their darkest
    neighbour by less than ``rise`` times their own transparency, on a scale where the
    image's shorter side is 256 to 511 working pixels. Below 512 pixels the image is measured
    as it is, in patches (a lone pixel or a strand's ridge is not a shelf); from 512 pixels at
    full resolution over a window one working pixel wide (:func:`_shelves_full_res`).

    A genuine soft edge climbs steeply from the background toward the body, so each of its
    pixels is clearly more opaque than its neighbour on the background side. A blotch that
    dims the body where it meets the contour is a flat shelf at its own level: its pixels
    have neighbours at the same level. Soft edges wider than about ``2 / rise`` working
    pixels look like shelves above ``level``. ``rise`` 0 disables the test.
    """
    if rise <= 0:
        return np.zeros(codes.shape, bool)
    level_code = int(np.ceil(level * 255.0 - 1e-6))
    candidates = candidates & (codes >= level_code)
    if not candidates.any():
        return candidates
    height, width = codes.shape
    # Measure at a fixed relative scale, so the test means the same at 512 and at 8192.
    factor = max(1, min(height, width) // SHELF_WORKING_SIDE)
    if factor >= SHELF_FULL_RES_FROM:
        # Windows wider than SHELF_MAX_RADIUS would make the time grow faster than the pixel
        # count: very large images are measured at a reduced size instead.
        reduce = max(1, factor // SHELF_MAX_RADIUS)
        if reduce == 1:
            return _shelves_full_res(codes, candidates, level_code, rise, factor)
        small = _shrink(codes, reduce, shrunk)
        inside = cv2.resize(candidates.view(np.uint8), small.shape[::-1], interpolation=cv2.INTER_AREA) > 0
        shelves = _shelves_full_res(small, inside, level_code, rise, factor // reduce)
        return candidates & cv2.resize(shelves.view(np.uint8), (width, height),
                                       interpolation=cv2.INTER_NEAREST).view(bool)
    work = _shrink(codes, factor, shrunk)
    own = work.astype(np.float32)
    climb = own - cv2.erode(work, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    # Nearly flat relative to the transparency left, and flat in absolute terms: a soft edge
    # climbing SHELF_MAX_CLIMB codes per pixel or more is genuine whatever its level.
    flat = (climb < np.float32(rise) * (255.0 - own)) & (climb < SHELF_MAX_CLIMB)
    # The measuring pixel itself must be at the shelf level: a dim pixel that only grazes a
    # strand is flat, but the strand's own bright pixels inside it are no shelf.
    flat &= work >= level_code
    if SHELF_RAMP_MIN > 0:
        # A one-pixel line of flat pixels on a steady ramp is the ridge of a strand climbing
        # into the body; a blotch's shelf is an area (it holds 2x2 blocks of flat pixels).
        block = np.ones((2, 2), np.uint8)
        areas = cv2.dilate(cv2.erode(flat.view(np.uint8), block, anchor=(0, 0)), block, anchor=(1, 1)).view(bool)
        rows, cols = np.nonzero(flat & ~areas)
        on_ramp = _steady_ramp(work, rows, cols, SHELF_RAMP_MIN)
        flat[rows[on_ramp], cols[on_ramp]] = False
    # A shelf is an area; a lone pixel or a short line is a strand climbing slowly.
    neighbours = cv2.boxFilter(flat.view(np.uint8), cv2.CV_8U, (3, 3), normalize=False,
                               borderType=cv2.BORDER_CONSTANT)
    flat &= neighbours >= SHELF_MIN_NEIGHBOURS + 1
    if SHELF_GROW_PASSES and flat.any():
        # A shelf's rim climbs a little more than its middle: grow the shelves into slightly
        # steeper pixels, a few pixels at most (a genuine soft edge is steeper still).
        inside = candidates if factor == 1 else candidates[::factor, ::factor]
        loose = ((climb < np.float32(SHELF_GROW_STEEPER * rise) * (255.0 - own))
                 & (climb < SHELF_GROW_STEEPER * SHELF_MAX_CLIMB)
                 & inside[:work.shape[0], :work.shape[1]]).view(np.uint8)
        grown = flat.view(np.uint8)
        for _ in range(SHELF_GROW_PASSES):
            grown = cv2.dilate(grown, np.ones((3, 3), np.uint8)) & loose | grown
        flat = grown.view(bool)
    if factor > 1:
        flat = cv2.resize(flat.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(bool)
    return candidates & flat


def _shelves_full_res(codes, candidates, level_code: int, rise: float, factor: int) -> np.ndarray:
    """The shelf test at full resolution for large images, on the working scale's terms: a
    shelf pixel climbs little above the lowest pixel within ``factor`` pixels (one working
    pixel). Measured over a window that wide, a strand climbing slowly along its length is
    steep toward its sides, so no separate area test is needed. Shelves then grow into pixels
    that climb a little more per pixel, ``factor`` pixels per pass. 8-bit OpenCV arithmetic
    throughout: cheaper than numpy on the many candidates of a large hair region."""
    box = _box(candidates, 2 * factor * (SHELF_GROW_PASSES + 1))
    if box is None:
        return np.zeros(codes.shape, bool)
    work, inside = codes[box], candidates[box].view(np.uint8)
    size = 2 * factor + 1
    window = np.ones((size, size), np.uint8)
    every_code = np.arange(256, dtype=np.float64)

    def gentle(climb, steeper: float, per: int = 1):
        """climb < steeper * rise * (255 - own) and climb < steeper * SHELF_MAX_CLIMB, with
        the climb counted over ``per`` times fewer pixels, as 0/1: one lookup of the bound for
        each pixel's own code (climbs are whole codes: ``climb < x`` is ``climb < ceil(x)``)."""
        bound = np.ceil(np.minimum(steeper * rise * (255.0 - every_code), steeper * SHELF_MAX_CLIMB) / per - 1e-9)
        bound[:level_code] = 0  # below the shelf level nothing is a shelf
        below = cv2.compare(climb, cv2.LUT(work, bound.astype(np.uint8)), cv2.CMP_LT)
        return below & inside  # compare gives 255 / 0; inside is 1 / 0

    flat = gentle(cv2.subtract(work, cv2.erode(work, window, borderType=cv2.BORDER_REPLICATE)), 1.0)
    if SHELF_GROW_PASSES and flat.any():
        # Rims climb a little more than the middle; judged per pixel (a working pixel is
        # ``factor`` pixels), so a shelf reaches up to the steep outline next to it.
        local = cv2.subtract(work, cv2.erode(work, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE))
        loose = gentle(local, SHELF_GROW_STEEPER, factor)
        for _ in range(SHELF_GROW_PASSES):
            flat = cv2.dilate(flat, window) & loose | flat
    out = np.zeros(codes.shape, bool)
    out[box] = flat.view(bool)
    return out


def _steady_ramp(codes: np.ndarray, rows: np.ndarray, cols: np.ndarray, step: int) -> np.ndarray:
    """For the pixels (``rows``, ``cols``): whether each is the middle of a steady ramp, a line
    of five pixels (in one of the four directions) whose codes climb by at least ``step`` at
    every pixel."""
    padded = cv2.copyMakeBorder(codes, 2, 2, 2, 2, cv2.BORDER_REPLICATE)
    rows, cols = rows + 2, cols + 2
    ramp = np.zeros(rows.shape, bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        line = [padded[rows + k * dy, cols + k * dx].astype(np.int16) for k in range(-2, 3)]
        climbs = [after - before for before, after in zip(line, line[1:])]
        ramp |= np.minimum.reduce(climbs) >= step
        ramp |= np.maximum.reduce(climbs) <= -step
    return ramp


def _taper(refined: np.ndarray, source: np.ndarray, codes: np.ndarray, kept: np.ndarray,
           filled: np.ndarray, fix_kind: np.ndarray, width: float) -> None:
    """Where filled pixels meet the kept band, let them rise to 1 over ``width`` pixels
    instead of jumping (no stair step along the band's inner limit). In place.

    Each ``filled`` pixel is capped at the nearest kept band value plus ``1 / width`` per
    pixel of (chessboard) distance, never below its own alpha; a pixel the cap leaves at its
    own value is no longer reported as changed (``fix_kind`` 0).
    """
    passes = int(np.ceil(width))
    square = np.ones((3, 3), np.uint8)
    box = _box(filled & cv2.dilate(kept.view(np.uint8), square).view(bool), passes + 1)
    if box is None:
        return
    # 255 outside the kept band (kept - 1 wraps to 255 where kept is 0).
    source_cap = cv2.bitwise_or(codes[box], kept[box].view(np.uint8) - np.uint8(1))
    step = int(np.ceil(255.0 / width))
    # Wide tapers (large images) are grown at a coarser scale: the passes cost grows with the
    # width, so a fixed number of passes keeps the time linear in the pixel count.
    factor = int(np.ceil(passes / TAPER_MAX_PASSES))
    if factor == 1:
        cap = source_cap
    else:
        box_height, box_width = source_cap.shape
        # Each coarse pixel starts from the lowest kept value of its factor x factor block.
        block = np.ones((factor, factor), np.uint8)
        cap = cv2.erode(source_cap, block, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::factor, ::factor]
        passes, step = int(np.ceil(passes / factor)), min(255, step * factor)
    for _ in range(passes):
        cap = cv2.min(cap, cv2.add(cv2.erode(cap, square), step))
    if factor > 1:
        fine = cv2.resize(cap, (cap.shape[1] * factor, cap.shape[0] * factor), interpolation=cv2.INTER_LINEAR)
        cap = cv2.min(source_cap, fine[:box_height, :box_width])
    # The capped pixels are a thin shell: index them by position (one scan of the box) rather
    # than by boolean masks (a scan per lookup).
    points = cv2.findNonZero(filled[box].view(np.uint8) & cv2.compare(cap, 255, cv2.CMP_LT))
    if points is None:
        return
    points = points.reshape(-1, 2)
    cols, rows = points[:, 0], points[:, 1]
    own = source[box][rows, cols]
    value = np.maximum(own, cap[rows, cols].astype(np.float32) / np.float32(255.0))
    refined[box][rows, cols] = value
    kinds = fix_kind[box][rows, cols]
    kinds[value - own < HALF_CODE] = 0
    fix_kind[box][rows, cols] = kinds


def _even_runs(codes: np.ndarray, inner: np.ndarray, below: int, above: int, min_length: int,
               max_step: int) -> np.ndarray:
    """Runs of a border line of codes that stay below ``below`` and change by at most
    ``max_step`` codes per pixel (after a 5-tap median, so single specks do not break a run),
    at least ``min_length`` long, along which the parallel line ``inner`` is mostly (median) at
    least ``above``."""
    smooth = cv2.medianBlur(np.ascontiguousarray(codes).reshape(-1, 1), 5).ravel().astype(np.int16)
    step = np.abs(np.diff(smooth))
    even = np.ones(codes.shape, bool)
    even[1:] &= step <= max_step
    even[:-1] &= step <= max_step
    padded = np.concatenate(([False], even & (smooth < below), [False])).view(np.int8)
    edges = np.diff(padded)
    out = np.zeros(codes.shape, bool)
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if end - start >= min_length and np.median(inner[start:end]) >= above:
            out[start:end] = True
    return out


def _ramp_reach(codes: np.ndarray, background: np.ndarray, proximity: _Proximity, depth: float,
                levels: tuple[float, ...], border_depth: int, shrunk: dict) -> np.ndarray:
    """Pixels below ``levels[-1]`` that the background reaches through pixels no more opaque
    than the level just above their own alpha, within ``depth`` of the background: the
    smooth ramp of a wide soft edge.

    Speckle sits in noisy near-opaque fields; a genuine wide transition climbs steadily from
    the background. Wide ramps are smooth, so they are judged on the 8-bit ``codes`` at the
    resolution ``proximity`` (the background's distances) measures at: half size for large
    images. The background reaches in from the image border, where every border-connected
    background component has a pixel.
    """
    allowed = proximity.coarse_within(depth)
    rim = int(border_depth / proximity.scale)
    if rim > 0:
        # A soft edge that runs along the frame is far from the visible background but climbs
        # from the background beyond the frame: near the border, ramps may run any length.
        allowed[:rim] = allowed[-rim:] = allowed[:, :rim] = allowed[:, -rim:] = True
    if proximity.scale == 1:
        small_codes, small_background = codes, background
    else:
        small_codes = _shrink(codes, proximity.scale, shrunk)
        # A coarse pixel is background only when all its fine pixels are.
        small_background = proximity.coverage == 255
    level_codes = [int(np.ceil(level * 255.0 - 1e-6)) for level in levels]
    genuine = np.zeros(small_codes.shape, bool)
    edges = _edges(small_background)
    if rim > 0:
        # A long, even stretch of border pixels below the first level, with the body nearly
        # opaque a rim's depth inside, is a soft edge running along the frame: the background
        # lies just beyond it, even where none is visible along that stretch. (A blotch where
        # the body leaves the frame is uneven, short or still dim a rim's depth inside.)
        min_run = max(1, int(BORDER_EDGE_MIN_RUN * min(small_codes.shape)))
        inset = min(rim, min(small_codes.shape) - 1)
        edges |= np.concatenate([
            _even_runs(line, inner, level_codes[0], level_codes[-1], min_run, BORDER_EDGE_MAX_STEP)
            for line, inner in ((small_codes[0], small_codes[inset]), (small_codes[-1], small_codes[-1 - inset]),
                                (small_codes[:, 0], small_codes[:, inset]),
                                (small_codes[:, -1], small_codes[:, -1 - inset]))])
    if edges.any():
        # Codes outside the allowed depth become 255: never below a level, never in a bucket.
        near_codes = np.where(allowed, small_codes, np.uint8(255))
        below_lower = np.zeros(small_codes.shape, bool)
        for level in level_codes:
            below = near_codes < level
            count, labels = _label((small_background | below).view(np.uint8))
            bucket = below & ~below_lower
            hit = np.zeros(count, bool)
            hit[_edges(labels)[edges]] = True
            # Look labels up only inside the bucket: a full-image lookup costs more.
            genuine[bucket] = hit[labels[bucket]]
            below_lower = below
    if proximity.scale == 1:
        return genuine
    return proximity.upsample(genuine) & (codes < level_codes[-1])


def refine_alpha(alpha, params: RefineParams | None = None, **overrides) -> RefineResult:
    """Repair Layer Diffusion's alpha with the portrait connectivity prior.

    Parameters
    ----------
    alpha : ndarray [H, W]
        Float in 0..1 (1 = opaque), or uint8 / uint16 / bool. NaN or inf raise ``ValueError``.
    params : RefineParams, optional
        Thresholds; keyword ``overrides`` replace single fields (``band_width=20``).

    Returns
    -------
    RefineResult
        ``alpha`` (float32 [H, W], 0..1), ``changed`` (bool [H, W]), ``stats`` (dict),
        ``fix_kind`` (uint8 [H, W], codes in ``FIX_KINDS``), ``background`` (bool [H, W]).

        ``stats`` has: ``height``, ``width``, ``semi_before`` and ``semi_after`` (pixels neither
        0 nor 1 at 8-bit precision), ``changed_pixels``, ``changed_fraction``, one pixel count per
        repair (``interior_fixed``, ``pinholes_filled``, ``debris_removed``,
        ``frame_fade_fixed``), ``background_fraction``, ``band_pixels`` (semi-transparent
        pixels kept as genuine transition), ``no_background`` (True when nothing touches the
        border, so only the frame-fade repair could apply) and ``params`` (the resolved
        thresholds).

    Notes
    -----
    Deterministic; the input is never modified. An alpha with no true background at all (the
    portrait covers the whole border, or the input is all opaque) gives no connectivity
    evidence, so only the frame-fade repair can apply; ``stats["no_background"]`` says so.
    """
    source = as_alpha(alpha)
    if params is None:
        params = RefineParams(**overrides)
    elif overrides:
        params = RefineParams(**{**asdict(params), **overrides})
    params.validate()
    height, width = source.shape
    p = params.resolved(height, width)

    opaque = source >= p["opaque_level"]
    not_opaque = ~opaque
    semi = not_opaque & (source > HALF_CODE)
    background, seeds = _background_with_seeds(source, p["background_level"], p["hole_min_area"], p["faint_level"])
    has_background = bool(seeds)
    refined = source
    fix_kind = np.zeros(source.shape, np.uint8)
    band = np.zeros(source.shape, bool)
    fade_guard = band
    band_pixels = 0

    if has_background:
        distance = _Proximity(background)
        codes = cv2.convertScaleAbs(source, alpha=255.0)  # nearest 8-bit code of each pixel
        shrunk = {}  # codes area-averaged by a factor, shared by the ramp and shelf tests
        # Thin opaque strands (curls crossing a soft edge) must not wall off the see-through
        # gaps behind them: judge gaps on the alpha with bright structures thinner than
        # ``strand_width`` opened away. Thick opaque body parts are unaffected.
        gap_code = int(np.ceil(p["gap_level"] * 255.0 - 1e-6))
        opened = _open_thin_strands(codes, p["strand_width"])
        see_through = opened < gap_code
        # Two coarse masks brought to full size in one go: bit 0 within reach of the
        # background, bit 1 a faint valley.
        coarse = distance.coarse_within(p["reach_depth"]).view(np.uint8)
        if p["faint_level"] > p["background_level"]:
            # A nearly transparent valley that the background reaches through nearly
            # transparent pixels is background seen through soft edges, however deep.
            coarse = coarse | _faint_valleys(opened, distance, p["faint_level"]).view(np.uint8) << 1
        packed = distance.upsample_codes(coarse)
        gaps = _reach(seeds, background | (see_through & (packed & 1).view(bool)))
        if p["faint_level"] > p["background_level"]:
            faint_code = int(np.ceil(p["faint_level"] * 255.0 - 1e-6))
            gaps |= np.greater_equal(packed, 2) & (opened < faint_code)
        near = distance.upsample(distance.coarse_within(p["band_width"])
                                 | _coarse_rim(gaps, distance.scale, p["gap_rim"]))
        passable = gaps | (not_opaque & near)
        del opened, see_through, gaps, near  # keep the peak memory (and page faults) low
        if p["ramp_levels"]:
            # Ramps are judged at a coarser scale, where a coarse pixel can mix a soft edge with
            # speckle just inside it: only ramp pixels that the background (or the frame)
            # reaches at full resolution count, so they join the band's own reach.
            ramp = _ramp_reach(codes, background, distance, p["ramp_depth"], p["ramp_levels"],
                               p["frame_fade_depth"], shrunk)
            band = _reach(seeds, passable | ramp, border_seeds=ramp)
            # A fade near a corner climbs like a ramp from the side edge: only the band proper
            # protects pixels from the frame-fade repair.
            fade_guard = band & passable
            del ramp
        else:
            band = fade_guard = _reach(seeds, passable)
        del passable
        errors = np.greater(not_opaque, band)  # not opaque and not band
        beyond_band = errors.copy()  # cut off by the band's reach, not by a local test
        band_semi = band & semi
        band_pixels = int(np.count_nonzero(band_semi))
        if p["speckle_passes"] > 0:
            speck = _band_speckle(codes, band_semi, p["speckle_level"], p["speckle_passes"])
            band_pixels -= int(np.count_nonzero(speck))
            errors |= speck
            band_semi &= ~speck
        shelf = _shelves(codes, band_semi, p["shelf_level"], p["shelf_rise"], shrunk)
        band_pixels -= int(np.count_nonzero(shelf))
        errors |= shelf
        pinholes = errors & (source <= p["background_level"])
        if not p["fix_pinholes"]:
            errors &= ~pinholes
            pinholes[:] = False
        if not p["fix_interior"]:
            errors &= pinholes
        # 1 (interior) for every error, plus 1 more (2, pinhole) where it is a zero hole.
        np.add(errors.view(np.uint8), pinholes.view(np.uint8), out=fix_kind)
        refined = np.maximum(source, errors, dtype=np.float32)  # errors become 1
        if p["taper_width"] > 0:
            _taper(refined, source, codes, band_semi, beyond_band & ~pinholes, fix_kind, p["taper_width"])

    if p["fix_frame_fade"]:
        # Anchors are judged after the interior repair: speckle must not hide an opaque body.
        # Where the contour meets the border obliquely, the soft edge lies in the fade zone
        # too: pixels of the genuine band are never a fade. A fade dims an opaque body; a
        # pixel below ``fade_min_alpha`` is a soft edge running along the border.
        def eligible(orient, rows):
            return (orient(not_opaque)[:rows] & ~orient(fade_guard)[:rows]
                    & (orient(source)[:rows] >= p["fade_min_alpha"]))

        fade = _frame_fade(refined, eligible, p["opaque_level"], p["frame_fade_depth"], p["fade_min_alpha"])
        # A fade pixel already classed interior is reported as a fade, its actual cause.
        if fade.any():
            np.copyto(fix_kind, np.uint8(_KIND_CODE["frame_fade"]), where=fade)
            if refined is source:
                refined = source.copy()
            np.copyto(refined, np.float32(1.0), where=fade)
    if has_background and p["remove_debris"]:
        debris = _debris(source, background, distance, p)
        if debris.any():
            np.copyto(fix_kind, _KIND_CODE["debris"], where=debris)
            if refined is source:
                refined = source.copy()
            np.copyto(refined, np.float32(0.0), where=debris)

    # Every repair moves a pixel to exactly 0 or 1 from at least half a code away.
    changed = fix_kind != 0
    counts = [0] + [int(np.count_nonzero(fix_kind == code)) for code in FIX_KINDS]
    changed_count = sum(counts)
    semi_before_count = int(np.count_nonzero(semi))
    # Counted on the result: the taper leaves some changed pixels semi-transparent.
    semi_after_count = int(np.count_nonzero((refined > HALF_CODE) & (refined < 1.0 - HALF_CODE)))
    stats = {
        "height": height,
        "width": width,
        "semi_before": semi_before_count,
        "semi_after": semi_after_count,
        "changed_pixels": changed_count,
        "changed_fraction": changed_count / changed.size,
        "interior_fixed": int(counts[1]),
        "pinholes_filled": int(counts[2]),
        "debris_removed": int(counts[3]),
        "frame_fade_fixed": int(counts[4]),
        "background_fraction": float(np.count_nonzero(background) / background.size),
        "band_pixels": band_pixels,
        "no_background": not has_background,
        "params": p,
    }
    if refined is source:
        refined = source.copy()  # never hand back (a view of) the caller's own array
    return RefineResult(alpha=refined, changed=changed, stats=stats, fix_kind=fix_kind, background=background)
