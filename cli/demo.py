"""``ld-portrait demo OUTPUT_DIR``: synthetic portraits -> dataset + contact sheet, no models.

The work is :func:`..pipeline.demo.run_demo`; options and the runner are shared with
``refine`` (:mod:`.refine`).
"""
from __future__ import annotations

from .common import non_negative_int
from .refine import add_refine_options, refine_like_parser, run_refine_like

__all__ = ["register"]


def register(commands) -> None:
    """Add ``demo`` to the ``ld-portrait`` sub-commands."""
    demo = refine_like_parser(
        commands, "demo", help="synthetic portraits -> dataset + contact sheet (no models needed)",
        description="Synthesise portraits with Layer-Diffusion-like alpha artifacts, write them "
                    "to OUTPUT_DIR/input/, refine them exactly like `refine` into "
                    "OUTPUT_DIR/dataset/ and draw OUTPUT_DIR/contact_sheet.png.")
    demo.add_argument("output_dir", metavar="OUTPUT_DIR")
    demo.add_argument("--count", type=int, default=8, help="number of portraits, 1..1000 (default 8)")
    demo.add_argument("--size", type=int, default=512,
                      help="portrait side in pixels, 64..4096 (default 512)")
    demo.add_argument("--seed", type=non_negative_int, default=0,
                      help="first synthesis seed (default 0)")
    add_refine_options(demo, demo=True)
    demo.set_defaults(handler=run_refine_like)
