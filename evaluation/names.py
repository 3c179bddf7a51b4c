"""The names the evaluation offers: protocols and measures (standard library only, so the
command line's parser can list them without loading numpy and OpenCV)."""
from __future__ import annotations

__all__ = ["PROTOCOLS", "METRIC_NAMES"]

#: Protocol name -> one-line description (the CLI's ``--protocol`` choices).
PROTOCOLS = {
    "dim": "Adobe DIM MATLAB code: unknown region of the trimap (or whole image), "
           "SAD/Grad/Conn / 1000",
    "whole": "P3M-500 / AM-2K whole-image code: every pixel, SAD/Conn / 1000, Grad / 10 "
             "(no mat2gray)",
}

#: The order of the measures in tables and CSV files.
METRIC_NAMES = ("sad", "mse", "mad", "grad", "conn")
