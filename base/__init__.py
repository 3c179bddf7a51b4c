"""The base layer: what every other package of the pack builds on, and nothing of theirs.

Named ``base`` for its place and its rule: it is the lowest layer (``tests/helpers/layers.py``),
imports no other package of the pack and no torch, and holds only what several packages above
it share -- the matte and image basics (numpy and OpenCV) and the standard-library plumbing of
settings and package namespaces. The paper's algorithm (connectivity refinement, its
parameters, the quality gate) is not here but in :mod:`..refine`, one layer up.

- :mod:`.validation` -- input checks every matte function uses: float / 8- / 16-bit arrays to
  float32 0..1, or a ``ValueError`` that says what was wrong
- :mod:`.trimap`     -- trimaps from an alpha (unknown band) and from a coarse mask (erode /
  dilate), in the field's 0/128/255 codes or the solvers' 0/0.5/1
- :mod:`.padding`    -- ``pad_foreground``: Layer Diffusion's colour padding under alpha = 0
- :mod:`.composite`  -- compositing over picture folders or procedural backgrounds
- :mod:`.errormap`   -- the paper's alpha-bar / alpha-bar_h pictures, error maps and panels
- :mod:`.fields`     -- the settings base: fields with a range and a meaning, checked when a
  settings object is made (standard library only)
- :mod:`.lazy`       -- package namespaces that import their modules on first use (standard
  library only)

Importing this package imports none of its modules: ``fields`` and ``lazy`` are read by the
command line's parser, which must start without numpy and OpenCV.
"""
