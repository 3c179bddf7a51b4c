"""Folder layouts of the common matting datasets, as :mod:`.export` writes them.

Each layout names, for its training split and its validation (test) split, the folder of each
kind of file an exported composite has:

``image``   the composite ``F * alpha + B * (1 - alpha)`` (the "original" photograph)
``mask``    the alpha matte, 8-bit gray (AM-2K / P3M call it mask)
``alpha``   the same matte under the Composition-1k name
``fg``      the foreground colour ``F``, 8-bit RGB
``bg``      the background ``B`` the composite used, fitted to the foreground's size
``trimap``  0 background, 128 unknown, 255 foreground

What the public loaders expect (checked against their code):

- AM-2K (JizhiziLi/GFM ``core/config.py``, ``core/data.py``): ``train/{original,mask,fg,bg}``,
  ``validation/{original,mask,trimap}``; the mask list drives the loader and the original is
  found as ``<stem>.jpg``; masks, fg, bg and trimaps are ``<stem>.png`` (same stem).
- P3M-10k (JizhiziLi/P3M ``core/config.py``, ``core/util.py``): ``train/{blurred_image,mask,fg,
  bg}`` and ``validation/P3M-500-P/{blurred_image,mask,trimap}``; images ``.jpg``, the rest
  ``.png``. Our composites are not face-blurred; the folder is named as the loaders expect.
- Composition-1k (Adobe Deep Image Matting, ``Combined_Dataset``): ``Training_set`` and
  ``Test_set`` each with ``fg/`` and ``alpha/`` (one file per foreground, same name),
  ``training_fg_names.txt`` / ``test_fg_names.txt`` (foreground file names, one a line) and
  ``training_bg_names.txt`` / ``test_bg_names.txt`` (background file names, ``N`` per
  foreground, foreground-major, as the DIM composition script consumes them); composites are
  ``merged/<stem>_<k>.png`` as that script names them, and test trimaps are
  ``trimaps/<stem>_<k>.png`` (one per composite, as the released test set has). We also keep
  the fitted backgrounds in ``bg/<stem>_<k>.png`` so the name lists point at real files.
"""
from __future__ import annotations

import dataclasses

__all__ = ["LAYOUTS", "SplitLayout", "Layout", "get_layout", "IMAGE_FORMATS"]

#: Encodings offered for the composite images (everything else is always PNG).
IMAGE_FORMATS = ("jpg", "png")


@dataclasses.dataclass(frozen=True)
class SplitLayout:
    """Where one split (training or validation) of a layout keeps its files.

    Attributes
    ----------
    folder : str
        Folder of the split, relative to the export root (``/``-separated).
    folders : dict
        Kind (see the module docstring) -> sub-folder of ``folder``.
    per_foreground : frozenset
        Kinds stored once per foreground, named ``<id>.png``; the other kinds are stored once
        per composite.
    name_lists : tuple of str, or None
        ``(foreground list, background list)`` file names written in ``folder``.
    """

    folder: str
    folders: dict
    per_foreground: frozenset = frozenset()
    name_lists: tuple | None = None


@dataclasses.dataclass(frozen=True)
class Layout:
    """A dataset layout: its two splits and how composites are named.

    Attributes
    ----------
    name : str
    train, validation : SplitLayout
    default_image_format : str
        ``"jpg"`` or ``"png"``: what the original dataset ships.
    always_number : bool
        Composites are named ``<id>_<k>`` even when there is one per foreground (Composition-1k
        does, starting at 0); otherwise a single composite is just ``<id>``.
    """

    name: str
    train: SplitLayout
    validation: SplitLayout
    default_image_format: str
    always_number: bool = False

    def split(self, name: str) -> SplitLayout:
        return self.train if name == "train" else self.validation

    def composite_name(self, sample_id: str, k: int, per_fg: int) -> str:
        """File stem of composite ``k`` of foreground ``sample_id``."""
        return f"{sample_id}_{k}" if (self.always_number or per_fg > 1) else sample_id

    def relative_files(self, split: str, sample_id: str, k: int, per_fg: int,
                       image_format: str) -> dict:
        """Kind -> path relative to the export root, for composite ``k`` of ``sample_id``."""
        where = self.split(split)
        stem = self.composite_name(sample_id, k, per_fg)
        files = {}
        for kind, sub in where.folders.items():
            name = sample_id if kind in where.per_foreground else stem
            suffix = image_format if kind == "image" else "png"
            files[kind] = f"{where.folder}/{sub}/{name}.{suffix}"
        return files


def _mask_layout(name: str, image_folder: str, validation_folder: str) -> Layout:
    """The AM-2K / P3M family: JPEG images in ``image_folder``, masks, and for training
    foreground + background, for validation a trimap."""
    return Layout(
        name=name,
        train=SplitLayout("train", {"image": image_folder, "mask": "mask", "fg": "fg", "bg": "bg"}),
        validation=SplitLayout(validation_folder, {"image": image_folder, "mask": "mask", "trimap": "trimap"}),
        default_image_format="jpg")


_AM2K = _mask_layout("am2k", "original", "validation")
_P3M = _mask_layout("p3m", "blurred_image", "validation/P3M-500-P")

_COMP1K = Layout(
    name="comp1k",
    train=SplitLayout("Training_set", {"image": "merged", "fg": "fg", "alpha": "alpha",
                                       "bg": "bg"},
                      per_foreground=frozenset({"fg", "alpha"}),
                      name_lists=("training_fg_names.txt", "training_bg_names.txt")),
    validation=SplitLayout("Test_set", {"image": "merged", "fg": "fg", "alpha": "alpha",
                                        "bg": "bg", "trimap": "trimaps"},
                           per_foreground=frozenset({"fg", "alpha"}),
                           name_lists=("test_fg_names.txt", "test_bg_names.txt")),
    default_image_format="png",
    always_number=True)

#: Layout name -> :class:`Layout`.
LAYOUTS = {layout.name: layout for layout in (_AM2K, _P3M, _COMP1K)}


def get_layout(name: str) -> Layout:
    """The layout called ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}.") from None
