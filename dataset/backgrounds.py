"""Folders of background pictures for compositing (file access; the pixels work is in
:mod:`..base.composite`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base.composite import BACKGROUND_SUFFIXES, cover_crop
from .imagefiles import read_rgba

__all__ = ["list_background_files", "read_background", "BackgroundFolder"]


def list_background_files(folder) -> list[Path]:
    """Image files directly inside ``folder`` (:data:`BACKGROUND_SUFFIXES`), sorted by name.

    Hidden files (names starting with ``.``) are left out.
    """
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in BACKGROUND_SUFFIXES)


def read_background(path, *, max_pixels: int | None = None,
                    max_bytes: int | None = None) -> np.ndarray:
    """A background picture as float32 RGB ``[H, W, 3]`` in 0..1 (alpha, if any, dropped).

    Gray pictures are repeated into three channels; 8- and 16-bit files are accepted. The
    file's size and declared dimensions are checked before decoding (limits as in
    :func:`.imagefiles.check_image_file`: None takes the environment or the default).

    Raises
    ------
    ImageFileError (a ValueError)
        Missing, unreadable or not an image.
    ImageTooLargeError (an ImageFileError)
        Over the byte or pixel limit (a decompression bomb is never decoded).
    """
    return read_rgba(path, require_alpha=False, max_pixels=max_pixels, max_bytes=max_bytes)[0]


class BackgroundFolder:
    """Background pictures from a list of files, in an order shuffled by a seed.

    Position ``i`` uses file ``order[i % n]`` where ``order`` is a permutation of the ``n``
    files drawn from ``seed``; a file that cannot be read is remembered in :attr:`skipped`
    and the next one in the order is used instead, so one broken file does not stop a batch.

    Parameters
    ----------
    files : sequence of str or Path
        Picture files (see :func:`list_background_files`); at least one.
    seed : int
        Seed of the order (any non-negative int; reduced modulo 2**63).
    max_pixels, max_bytes : int, optional
        Size limits checked before decoding each picture (see :func:`read_background`); a
        picture over them is skipped like an unreadable one.

    Attributes
    ----------
    skipped : dict
        File name -> reason, for each file that could not be read so far.
    """

    def __init__(self, files, seed: int = 0, *, max_pixels: int | None = None,
                 max_bytes: int | None = None):
        self.files = [Path(f) for f in files]
        self.limits = {"max_pixels": max_pixels, "max_bytes": max_bytes}
        if not self.files:
            raise ValueError("BackgroundFolder needs at least one picture file.")
        self.order = [int(i) for i in
                      np.random.default_rng(int(seed) % (1 << 63)).permutation(len(self.files))]
        self.skipped: dict[str, str] = {}

    def pick(self, position: int, height: int, width: int) -> tuple[np.ndarray, str]:
        """The background for ``position``, fitted to ``height x width`` with :func:`cover_crop`.

        Returns
        -------
        picture : float32 ndarray [height, width, 3] in 0..1
        name : str
            File name of the picture used.

        Raises
        ------
        ValueError
            No file could be read; the message lists the reasons.
        """
        count = len(self.files)
        for attempt in range(count):  # next file when one is unreadable
            path = self.files[self.order[(int(position) + attempt) % count]]
            if path.name in self.skipped:
                continue
            try:
                return cover_crop(read_background(path, **self.limits), height, width), path.name
            except (ValueError, OSError) as error:
                self.skipped[path.name] = str(error)
        folder = self.files[0].parent
        raise ValueError(f"none of the {count} picture(s) in {folder} could be read: "
                         f"{'; '.join(self.skipped.values())}")
