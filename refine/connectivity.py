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
   near-zero holes (the gap between an arm and the torso).
2. Gaps: pixels below ``gap_level`` that the background reaches through pixels below
   ``gap_level`` within ``reach_depth`` of ``B`` -- the see-through holes between hair strands.
   Strands thinner than ``strand_width`` are opened away first, so a curl lying across a soft
   edge does not wall off the gaps behind it.
3. Band: non-opaque pixels reachable from those gaps through non-opaque pixels while staying
   within ``band_width`` of ``B`` or within ``gap_rim`` of a gap, plus the steadily climbing
   ramps of wide soft edges (pixels below ``ramp_levels[-1]`` that the background reaches
   through pixels no more opaque than the next level, within ``ramp_depth``). The band is
   kept as it is, except band speckle: near-opaque pixels darker than all their neighbours
   (a genuine soft edge always has a more transparent neighbour toward the background).
4. Everything else that is neither opaque nor background is an error and is filled to 1:
   semi-transparent speckle and blotches (``interior``) and enclosed zero holes (``pinhole``).
5. Frame fade: near each border, where the body continues out of the frame (an opaque
   anchor ``frame_fade_depth`` inside), a fade toward the border is filled to 1.
6. Debris: islands not connected to the portrait that are faint or tiny are set to 0.

All sizes default to fractions of the image's shorter side, so the same defaults work from
256 to 4096 pixels. The function is deterministic and uses OpenCV's connected components and
distance transforms; see ``benchmarks/bench_refine.py`` for its speed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .validation import HALF_CODE, as_alpha

__all__ = ["RefineParams", "RefineResult", "FIX_KINDS", "refine_alpha", "true_background"]

FIX_KINDS = {1: "interior", 2: "pinhole", 3: "debris", 4: "frame_fade"}
_KIND_CODE = {name: code for code, name in FIX_KINDS.items()}



@dataclass(frozen=True)
class RefineParams:
    """Thresholds of :func:`refine_alpha`. Sizes given as ``None`` scale with the image.

    Attributes
    ----------
    background_level : float
        Alpha at or below which a pixel can be true background (0..1). Default 2/255: LD's
        background is exactly 0 up to faint noise.
    opaque_level : float
        Alpha at or above which a pixel is opaque and blocks the background's reach (0..1).
    gap_level : float
        Alpha below which a pixel is a see-through gap the background can cross (0..1).
    band_width : float or None
        How deep (pixels from the true background) the genuine transition band may reach.
        Default 3% of the shorter side (31 px at 1024, at least 4).
    gap_rim : float or None
        How far (pixels) the band may extend beyond the reachable see-through gaps, however
        deep they are: the opaque half of a soft edge. Default 1% of the shorter side
        (10 px at 1024, at least 2).
    reach_depth : float or None
        How deep (pixels from the true background) gaps can be reached. Default 4% of the
        shorter side (41 px at 1024).
    strand_width : int or None
        Opaque structures narrower than this (pixels) -- hair strands, curls -- do not block
        the background's reach into the gaps behind them. Default 0.5% of the shorter side
        (at least 5 px); 0 or 1 makes every opaque pixel a wall.
    hole_min_area : int or None
        Enclosed near-zero regions at least this large (pixels) are genuine background holes;
        smaller ones are pinholes. Default 0.1% of the image area (at least 16).
    debris_max_alpha : float
        Islands disconnected from the portrait whose peak alpha is below this are debris.
    island_min_area : int or None
        Disconnected islands smaller than this (pixels) are debris whatever their peak.
        Default 0.01% of the image area (at least 4).
    keep_island_fraction : float
        Islands at least this fraction of the largest one are kept (a second person or a
        held object is the quality gate's business, not the refiner's).
    ramp_levels : tuple of float
        Increasing alpha levels (0..1). A pixel below the last level is also genuine when
        the background reaches it through pixels below the level just above its own alpha
        (a steadily climbing soft edge, such as wide hair fringes), however deep it lies
        within ``ramp_depth``. Empty disables this.
    ramp_depth : float or None
        How deep (pixels from the true background) a ramp may reach. Default 6% of the
        shorter side (twice the default band width).
    speckle_level : float
        Inside the band, a pixel at or above this alpha that is darker than all 8 neighbours
        is speckle (a genuine soft edge always has a more transparent neighbour).
    speckle_passes : int
        How many times the band speckle test is repeated (each pass exposes the next pixel
        of a speckle chain). 0 disables it.
    frame_fade_depth : int or None
        Rows/columns from an image border in which a fade of the body toward the border is
        repaired. Default 2.5% of the side length (at least 2). 0 disables the repair.
    fade_min_alpha : float
        Only pixels at least this opaque count as a fade (0..1): a fade dims an opaque body,
        while a dimmer pixel there is a soft edge running along the border.
    fix_interior, fix_pinholes, remove_debris, fix_frame_fade : bool
        Switch each repair on or off.
    """

    background_level: float = 2.0 / 255.0
    opaque_level: float = 1.0 - HALF_CODE
    gap_level: float = 0.5
    band_width: float | None = None
    gap_rim: float | None = None
    reach_depth: float | None = None
    strand_width: int | None = None
    hole_min_area: int | None = None
    debris_max_alpha: float = 0.5
    island_min_area: int | None = None
    keep_island_fraction: float = 0.02
    speckle_level: float = 0.8
    speckle_passes: int = 3
    ramp_levels: tuple = (0.65, 0.8)
    ramp_depth: float | None = None
    frame_fade_depth: int | None = None
    fade_min_alpha: float = 0.5
    fix_interior: bool = True
    fix_pinholes: bool = True
    remove_debris: bool = True
    fix_frame_fade: bool = True

    def validate(self) -> None:
        for name in ("background_level", "opaque_level", "gap_level", "debris_max_alpha",
                     "keep_island_fraction", "speckle_level", "fade_min_alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in 0..1; got {value!r}.")
        if not self.background_level < self.gap_level < self.opaque_level:
            raise ValueError(
                "Need background_level < gap_level < opaque_level; got "
                f"{self.background_level}, {self.gap_level}, {self.opaque_level}."
            )
        if not (isinstance(self.speckle_passes, (int, np.integer)) and 0 <= self.speckle_passes <= 64):
            raise ValueError(f"speckle_passes must be an integer in 0..64; got {self.speckle_passes!r}.")
        levels = tuple(self.ramp_levels)
        if any(not (isinstance(v, (int, float)) and 0.0 < v <= 1.0) for v in levels) or list(levels) != sorted(set(levels)):
            raise ValueError(f"ramp_levels must be strictly increasing numbers in (0, 1]; got {self.ramp_levels!r}.")
        for name in ("band_width", "gap_rim", "reach_depth", "ramp_depth", "strand_width", "hole_min_area", "island_min_area", "frame_fade_depth"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be None (scale with the image) or >= 0; got {value!r}.")

    def resolved(self, height: int, width: int) -> dict:
        """Concrete values for an image of ``height`` x ``width`` pixels."""
        short = min(height, width)
        area = height * width
        values = asdict(self)
        if self.band_width is None:
            values["band_width"] = max(4.0, 0.03 * short)
        if self.gap_rim is None:
            values["gap_rim"] = max(2.0, 0.010 * short)
        if self.reach_depth is None:
            values["reach_depth"] = max(4.0, 0.04 * short)
        if self.ramp_depth is None:
            values["ramp_depth"] = max(8.0, 0.06 * short)
        values["ramp_depth"] = float(values["ramp_depth"])
        values["ramp_levels"] = tuple(float(level) for level in self.ramp_levels)
        if self.strand_width is None:
            values["strand_width"] = max(5, int(round(0.005 * short)) | 1)
        if self.hole_min_area is None:
            values["hole_min_area"] = max(16, int(round(0.001 * area)))
        if self.island_min_area is None:
            values["island_min_area"] = max(4, int(round(0.0001 * area)))
        if self.frame_fade_depth is None:
            values["frame_fade_depth"] = max(2, int(round(0.025 * short)))
        values["band_width"] = float(values["band_width"])
        values["reach_depth"] = float(values["reach_depth"])
        values["gap_rim"] = float(values["gap_rim"])
        values["hole_min_area"] = int(values["hole_min_area"])
        values["strand_width"] = int(values["strand_width"])
        values["island_min_area"] = int(values["island_min_area"])
        values["frame_fade_depth"] = int(values["frame_fade_depth"])
        return values


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


def _background_with_seeds(alpha: np.ndarray, background_level: float, hole_min_area: int):
    """True background and one seed pixel (row, col) per background component."""
    low = (alpha <= background_level).view(np.uint8)
    _, labels = _label(low)
    height, width = labels.shape
    edges = np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))
    border, first = np.unique(edges, return_index=True)
    background = _select(labels, border)
    # One seed per border component: its first pixel along the edges.
    edge_rows = np.concatenate((np.zeros(width, int), np.full(width, height - 1), np.arange(height), np.arange(height)))
    edge_cols = np.concatenate((np.arange(width), np.arange(width), np.zeros(height, int), np.full(height, width - 1)))
    seeds = [(int(edge_rows[i]), int(edge_cols[i])) for label, i in zip(border, first) if label > 0]
    enclosed = low.view(bool) & ~background
    if np.count_nonzero(enclosed) >= max(1, hole_min_area):
        sizes = np.bincount(labels[enclosed])
        holes = np.flatnonzero(sizes >= max(1, hole_min_area))
        if holes.size:
            background |= _select(labels, holes)
            flat = labels.ravel()
            for label in holes:  # large holes are few
                seeds.append(divmod(int(np.argmax(flat == label)), width))
    return background, seeds


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
    return _background_with_seeds(as_alpha(alpha), background_level, hole_min_area)[0]


def _reach(seeds: list, passable: np.ndarray) -> np.ndarray:
    """Pixels of ``passable`` 8-connected to one of the seed pixels (which must be passable)."""
    _, labels = _label(passable.view(np.uint8))
    wanted = np.unique(np.array([labels[r, c] for r, c in seeds], dtype=np.int64))
    return _select(labels, wanted)


class _Proximity:
    """Distances (pixels) to the ``True`` pixels of a mask, queried by threshold.

    Images of at least 512 pixels a side are measured at half resolution: the thresholds
    applied here are several pixels wide, so one pixel of slack costs nothing, and the
    transform and the comparisons run four times faster.
    """

    def __init__(self, mask: np.ndarray):
        self.shape = mask.shape
        height, width = mask.shape
        self.scale = 2 if min(height, width) >= 512 else 1
        if self.scale == 1:
            self.coverage = None
            far = (~mask).view(np.uint8)
        else:
            half = (width + 1) // 2, (height + 1) // 2
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

    def within(self, radius: float) -> np.ndarray:
        """Bool mask [H, W] of pixels at most ``radius`` pixels from the mask."""
        return self.upsample(self.coarse_within(radius))

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
    the background); islands big enough relative to it are kept.
    """
    visible = np.greater(alpha > HALF_CODE, background)  # present and not background
    count, labels = _label(visible.view(np.uint8))
    if count <= 2:
        return np.zeros(alpha.shape, bool)
    deepest = depth.deepest(visible)
    islands = visible & (labels != labels[deepest])
    island_labels = labels[islands]
    if island_labels.size == 0:
        return np.zeros(alpha.shape, bool)
    areas = np.bincount(island_labels, minlength=count)
    strong = np.zeros(count, bool)
    strong[labels[islands & (alpha >= p["debris_max_alpha"])]] = True
    portrait_area = np.count_nonzero(visible) - island_labels.size
    small = areas < p["island_min_area"]
    minor = areas < max(1.0, p["keep_island_fraction"] * portrait_area)
    is_debris = (areas > 0) & minor & (small | ~strong)
    debris = np.zeros(alpha.shape, bool)
    # Look labels up only where islands are: a full-image lookup costs more than all the rest.
    debris[islands] = is_debris[island_labels]
    return debris


def _frame_fade(refined: np.ndarray, eligible, opaque_level: float, depth: int) -> np.ndarray:
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
        candidates = run[:d] & (strip[d] >= opaque_level)[None, :]
        if candidates.any():
            orient(fade)[:d] |= candidates & eligible(orient, d)
    return fade


def _open_thin_strands(codes: np.ndarray, width: int) -> np.ndarray:
    """Grey-scale opening of 8-bit codes: removes bright structures narrower than ``width``."""
    if width <= 1:
        return codes
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (width, width))
    return cv2.morphologyEx(codes, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)


def _band_speckle(codes: np.ndarray, candidates: np.ndarray, level: float, passes: int) -> np.ndarray:
    """Near-opaque ``candidates`` darker than all 8 neighbours (speckle chained to the band).

    A genuine soft edge always has a more transparent neighbour toward the background, so a
    strict local minimum at or above ``level`` is an error. Each pass fills the minima found,
    which exposes the next pixel of a speckle chain. Works on the 8-bit ``codes`` of the alpha:
    cheap, and exact for the 8-bit data Layer Diffusion produces.
    """
    level_code = int(np.ceil(level * 255.0 - 1e-6))
    candidates = candidates & (codes >= level_code)
    if passes <= 0 or not candidates.any():
        return np.zeros(codes.shape, bool)
    work = codes.copy()
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    for _ in range(passes):
        lowest_neighbour = cv2.erode(work, ring, borderType=cv2.BORDER_REPLICATE)
        speck = candidates & (work < lowest_neighbour)
        if not speck.any():
            break
        np.copyto(work, 255, where=speck)  # filled: 255 is never below a neighbour again
    return work != codes  # exactly the pixels filled above


def _ramp_reach(codes: np.ndarray, background: np.ndarray, proximity: _Proximity, depth: float,
                levels: tuple[float, ...]) -> np.ndarray:
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
    if proximity.scale == 1:
        small_codes, small_background = codes, background
    else:
        small_codes = cv2.resize(codes, allowed.shape[::-1], interpolation=cv2.INTER_AREA)
        # A coarse pixel is background only when all its fine pixels are.
        small_background = proximity.coverage == 255
    level_codes = [int(np.ceil(level * 255.0 - 1e-6)) for level in levels]
    genuine = np.zeros(small_codes.shape, bool)
    edges = np.concatenate((small_background[0], small_background[-1],
                            small_background[:, 0], small_background[:, -1]))
    if edges.any():
        lower = 0
        for level in level_codes:
            passable = small_background | ((small_codes < level) & allowed)
            _, labels = _label(passable.view(np.uint8))
            edge_labels = np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))[edges]
            bucket = (small_codes >= lower) & (small_codes < level) & allowed
            wanted = np.unique(edge_labels)
            hit = np.zeros(int(labels.max()) + 1, bool)
            hit[wanted] = True
            # Look labels up only inside the bucket: a full-image lookup costs more.
            genuine[bucket] = hit[labels[bucket]]
            lower = level
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
    background, seeds = _background_with_seeds(source, p["background_level"], p["hole_min_area"])
    has_background = bool(seeds)
    refined = source
    fix_kind = np.zeros(source.shape, np.uint8)
    band = np.zeros(source.shape, bool)
    band_pixels = 0

    if has_background:
        distance = _Proximity(background)
        codes = cv2.convertScaleAbs(source, alpha=255.0)  # nearest 8-bit code of each pixel
        # Thin opaque strands (curls crossing a soft edge) must not wall off the see-through
        # gaps behind them: judge gaps on the alpha with bright structures thinner than
        # ``strand_width`` opened away. Thick opaque body parts are unaffected.
        gap_code = int(np.ceil(p["gap_level"] * 255.0 - 1e-6))
        see_through = _open_thin_strands(codes, p["strand_width"]) < gap_code
        gaps = _reach(seeds, background | (see_through & distance.within(p["reach_depth"])))
        gap_distance = _Proximity(gaps)
        near = distance.upsample(distance.coarse_within(p["band_width"])
                                 | gap_distance.coarse_within(p["gap_rim"]))
        band = _reach(seeds, gaps | (not_opaque & near))
        if p["ramp_levels"]:
            band |= _ramp_reach(codes, background, distance, p["ramp_depth"], p["ramp_levels"])
        errors = np.greater(not_opaque, band)  # not opaque and not band
        band_semi = band & semi
        band_pixels = int(np.count_nonzero(band_semi))
        if p["speckle_passes"] > 0:
            speck = _band_speckle(codes, band_semi, p["speckle_level"], p["speckle_passes"])
            band_pixels -= int(np.count_nonzero(speck))
            errors |= speck
        pinholes = errors & (source <= p["background_level"])
        if not p["fix_pinholes"]:
            errors &= ~pinholes
            pinholes[:] = False
        if not p["fix_interior"]:
            errors &= pinholes
        # 1 (interior) for every error, plus 1 more (2, pinhole) where it is a zero hole.
        np.add(errors.view(np.uint8), pinholes.view(np.uint8), out=fix_kind)
        refined = np.maximum(source, errors, dtype=np.float32)  # errors become 1

    if p["fix_frame_fade"]:
        # Anchors are judged after the interior repair: speckle must not hide an opaque body.
        # Where the contour meets the border obliquely, the soft edge lies in the fade zone
        # too: pixels of the genuine band are never a fade. A fade dims an opaque body; a
        # pixel below ``fade_min_alpha`` is a soft edge running along the border.
        def eligible(orient, rows):
            return (orient(not_opaque)[:rows] & ~orient(band)[:rows]
                    & (orient(source)[:rows] >= p["fade_min_alpha"]))

        fade = _frame_fade(refined, eligible, p["opaque_level"], p["frame_fade_depth"])
        # A fade pixel already classed interior is reported as a fade, its actual cause.
        np.maximum(fix_kind, fade.view(np.uint8) * np.uint8(_KIND_CODE["frame_fade"]), out=fix_kind)
        refined = np.maximum(refined, fade, dtype=np.float32)
    if has_background and p["remove_debris"]:
        debris = _debris(source, background, distance, p)
        if debris.any():
            np.copyto(fix_kind, _KIND_CODE["debris"], where=debris)
            refined = np.where(debris, np.float32(0.0), refined)

    # Every repair moves a pixel to exactly 0 or 1 from at least half a code away.
    changed = fix_kind != 0
    counts = [0] + [int(np.count_nonzero(fix_kind == code)) for code in FIX_KINDS]
    changed_count = sum(counts)
    semi_before_count = int(np.count_nonzero(semi))
    semi_after_count = semi_before_count - int(np.count_nonzero(semi & changed))
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
