"""refine_alpha on hand-made shapes that the issue-9 families showed to be hard: fur strands
climbing into the body (not shelves), a soft side running along the frame (not a fade), a
blotch where the body leaves the frame (still filled), and the taper on large images."""
import numpy as np

from comfyui_ld_portrait.refine import connectivity
from comfyui_ld_portrait.refine.connectivity import refine_alpha

#: A soft edge's profile from the border inward (8-bit codes), as the metaball family draws it.
SIDE_PROFILE = np.array([14, 23, 52, 100, 155, 203, 234, 248, 253], np.float32) / 255


def fur_strands(step: int = 12):
    """An opaque body below row 200 with three-pixel strands that climb ``step`` codes per
    pixel from the background into it (soft one-pixel sides, background between strands)."""
    alpha = np.zeros((384, 384), np.float32)
    alpha[200:] = 1.0
    rows = np.arange(200 - 240 // step, 200)
    ramp = np.clip((255 - step * (200 - rows)) / 255.0, 0, 1).astype(np.float32)
    strands = np.zeros(alpha.shape, bool)
    for col in range(40, 340, 9):
        alpha[rows, col - 1] = alpha[rows, col + 3] = 0.35 * ramp
        for k in range(3):
            alpha[rows, col + k] = ramp
        strands[rows, col - 1:col + 4] = True
    return alpha, strands


def side_along_frame():
    """A body whose left side runs along the border with a soft edge; above it the shoulder
    touches the border, so no background is visible along that stretch."""
    alpha = np.zeros((384, 384), np.float32)
    alpha[200:] = 1.0
    alpha[260:, :SIDE_PROFILE.size] = SIDE_PROFILE
    edge = np.zeros(alpha.shape, bool)
    edge[260:, :SIDE_PROFILE.size] = True
    return alpha, edge


def test_strands_climbing_into_the_body_are_not_shelves(monkeypatch):
    alpha, strands = fur_strands()
    assert np.count_nonzero(refine_alpha(alpha).changed[strands]) == 0
    # Without the steady-ramp test the strands' middle lines pass the shelf test.
    monkeypatch.setattr(connectivity, "SHELF_RAMP_MIN", 0)
    assert np.count_nonzero(refine_alpha(alpha).changed[strands]) > 100


def test_flat_shelf_along_the_outline_is_still_filled():
    # A blotch dimming the body where it meets the outline: flat at 0.6, not a ramp.
    alpha = np.zeros((384, 384), np.float32)
    alpha[200:] = 1.0
    alpha[197:200, 60:320] = np.array([0.2, 0.4, 0.5], np.float32)[:, None]  # a thin soft edge
    alpha[200:212, 100:200] = 0.6
    result = refine_alpha(alpha)
    assert result.alpha[202:210, 105:195].min() == 1.0


def test_soft_side_running_along_the_frame_is_kept(monkeypatch):
    alpha, edge = side_along_frame()
    result = refine_alpha(alpha)
    soft = edge & (alpha < 0.95)
    assert np.count_nonzero(result.changed[soft]) == 0
    assert np.abs(result.alpha - alpha)[edge].max() <= 8 / 255  # the near-opaque rim at most
    # Without the border evidence the side is filled as a frame fade.
    monkeypatch.setattr(connectivity, "BORDER_EDGE_MIN_RUN", 2.0)
    assert refine_alpha(alpha).changed[soft].mean() > 0.9


def test_blotch_where_the_body_leaves_the_frame_is_still_filled():
    # A plateau at the bottom border that stays dim well inside: not a soft edge.
    alpha = np.zeros((384, 384), np.float32)
    alpha[200:] = 1.0
    rows = np.arange(360, 384)
    alpha[360:, 100:180] = np.minimum(1.0, (88 + 4 * (383 - rows)) / 255.0)[:, None]
    result = refine_alpha(alpha)
    assert result.alpha[360:, 100:180].min() == 1.0


def junction_steps(result) -> tuple[int, int]:
    """(steps above 0.3, pairs) over horizontal neighbour pairs where one pixel was changed
    and the other not."""
    junction = result.changed[:, 1:] ^ result.changed[:, :-1]
    steps = np.abs(np.diff(result.alpha, axis=1))[junction]
    return int(np.count_nonzero(steps > 0.3)), int(steps.size)


def test_wide_taper_rises_smoothly_at_a_coarser_scale(monkeypatch):
    """At 2048 the taper (0.4% of the side: 9 passes) is grown at half scale; it still removes
    the stair step and stays within a few codes of the exact per-pixel taper."""
    side = 2048
    yy, xx = np.mgrid[:side, :side]
    radius = np.hypot(yy - side / 2, xx - side / 2)
    # A flat soft ring (0.4) deeper than the band reaches: its outer part is kept, its inner
    # part filled, and the two meet along a circle.
    alpha = (radius < 0.45 * side).astype(np.float32)
    alpha[(radius < 0.45 * side) & (radius > 0.37 * side)] = 0.4
    untapered_steps, pairs = junction_steps(refine_alpha(alpha, taper_width=0))
    assert pairs > 1000 and untapered_steps > 0.3 * pairs  # the stair step the taper removes
    coarse = refine_alpha(alpha)
    monkeypatch.setattr(connectivity, "TAPER_MAX_PASSES", 10_000)
    exact = refine_alpha(alpha)
    assert junction_steps(coarse)[0] == 0 and junction_steps(exact)[0] == 0
    assert np.array_equal(coarse.changed, exact.changed)
    assert np.abs(coarse.alpha - exact.alpha).max() <= 32 / 255


def soft_hole(core_radius: float):
    """A body with an enclosed soft bowl around a 24-pixel slit (the gap between an arm and
    the torso seen through soft edges): alpha rises from near zero within ``core_radius`` of
    the slit to opaque 8 pixels further out."""
    yy, xx = np.mgrid[:384, :384]
    alpha = np.zeros((384, 384), np.float32)
    alpha[120:] = 1.0
    along = np.clip(xx - 190, -12, 12)
    radius = np.hypot(yy - 250, xx - 190 - along)  # distance to the slit
    bowl = np.clip((radius - core_radius) / 8.0, 0, 1).astype(np.float32)
    return np.minimum(alpha, bowl), radius < core_radius + 8


def test_enclosed_soft_bowl_with_a_small_clear_core_is_a_hole():
    alpha, bowl = soft_hole(core_radius=2.0)
    core = bowl & (alpha <= 2 / 255)
    result = refine_alpha(alpha)
    params = result.stats["params"]
    assert np.count_nonzero(core) < params["hole_min_area"] <= np.count_nonzero(bowl & (alpha < params["faint_level"]))
    assert np.count_nonzero(result.changed[bowl]) == 0
    assert result.background[core].all()
    # Measured at the near-zero level only, the same bowl is a pinhole in a blotch: filled.
    assert refine_alpha(alpha, faint_level=2 / 255).changed[bowl].mean() > 0.9


def test_pinhole_with_a_narrow_rim_is_still_filled():
    yy, xx = np.mgrid[:384, :384]
    alpha = np.zeros((384, 384), np.float32)
    alpha[120:] = 1.0
    radius = np.hypot(yy - 250, xx - 190)
    alpha = np.minimum(alpha, np.clip((radius - 2.0) / 2.0, 0, 1)).astype(np.float32)
    result = refine_alpha(alpha)
    assert result.alpha[240:260, 180:200].min() == 1.0


def body_1024():
    """A 1024 px opaque body below row 500 with a two-pixel soft outline (the measuring
    resolution of the coarse tests is a quarter of this)."""
    alpha = np.zeros((1024, 1024), np.float32)
    alpha[500:] = 1.0
    alpha[498:500] = np.array([[0.1], [0.6]], np.float32)
    return alpha


def test_thin_blotch_straddling_the_outline_is_filled_at_full_size(monkeypatch):
    """At 1024 px a blotch ten pixels deep along the outline is a shelf: measured at full
    resolution it is flat; at the quarter-size measuring resolution it blends into the outline
    next to it and would be kept."""
    alpha = body_1024()
    alpha[500:510, 300:700] = 0.83
    result = refine_alpha(alpha)
    # (The row touching the steep outline may stay: it climbs like the outline.)
    assert result.alpha[501:510, 305:695].min() == 1.0
    monkeypatch.setattr(connectivity, "SHELF_FULL_RES_FROM", 1000)
    assert (refine_alpha(alpha).alpha[501:510, 305:695] < 1.0).mean() > 0.3


def test_speckle_just_inside_the_outline_is_filled_at_full_size():
    """Speckle two pixels inside the outline: at the quarter-size measuring resolution of the
    ramp test the outline's coarse pixels and the speckle's touch and climb steadily, but at
    full size opaque pixels separate them, so the speckle is no soft edge."""
    alpha = np.zeros((1024, 1024), np.float32)
    alpha[503:] = 1.0
    alpha[501:503] = np.array([[0.1], [0.6]], np.float32)  # the outline, sharing a coarse row with the body
    speckle = np.zeros(alpha.shape, bool)
    for col in range(120, 900, 40):
        alpha[505:508, col:col + 4] = 0.7
        speckle[505:508, col:col + 4] = True
    result = refine_alpha(alpha)
    assert result.alpha[speckle].min() == 1.0
    assert np.array_equal(result.alpha[501:503], alpha[501:503])  # the outline is kept


def test_thin_blotch_is_filled_at_2048_where_shelves_are_measured_at_a_reduced_size():
    # From 2048 px the shelf window would grow with the image: it is measured at half size
    # with the same 9 px window, and a blotch twenty pixels deep is still a shelf.
    alpha = np.zeros((2048, 2048), np.float32)
    alpha[1000:] = 1.0
    alpha[996:1000] = np.array([[0.05], [0.2], [0.45], [0.7]], np.float32)
    alpha[1000:1020, 600:1400] = 0.83
    result = refine_alpha(alpha)
    assert result.stats["params"]["taper_width"] > 6  # the coarse taper path is taken too
    assert result.alpha[1004:1020, 610:1390].min() == 1.0
    assert np.array_equal(result.alpha[996:1000], alpha[996:1000])
