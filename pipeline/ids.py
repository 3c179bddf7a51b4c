"""Sample ids for input files: a pure function of the file name.

A file's id must not depend on what else is in the folder (``a.png`` processed, then ``A.png``
added: ``a.png`` keeps its id, so it is not redone as a duplicate). Ids must also differ when
ignoring letter case, because a dataset copied to macOS or Windows lives on a file system that
ignores it. Both hold with one rule on the name alone:

* a name whose stem is already a safe id (``portrait_01.png``) keeps the stem as its id when
  the stem has no capital letter -- the ids of earlier versions for such names;
* a safe stem with capitals (``A.png``, ``ComfyUI_00001_.png``) gets ``-`` and the first 8 hex
  digits of the SHA-1 of the full name appended (``A-6dcd4ce2``), so ``A.png`` and ``a.png``
  never share an id, whichever of them exists;
* any other name is sanitised and hashed by
  :func:`..dataset.safe_id_from_filename` (``'my photo.png'`` -> ``'my_photo-1a2b3c4d'``).

Earlier versions gave capitalised names the bare stem (and the hashed form only to the second
of two names differing in case), so :func:`legacy_ids` lists those forms: a resumed run treats
a file as complete when its sample exists under one of them, and no sample is redone.
"""
from __future__ import annotations

import hashlib
import os

from ..dataset import safe_id_from_filename

__all__ = ["sample_id_for", "legacy_ids"]

_MAX_STEM = 119  # MAX_ID_LENGTH (128) - 9 for "-" and the 8 hex digits


def _name_digest(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _plain_stem(name: str) -> str | None:
    """The stem when :func:`safe_id_from_filename` keeps it unchanged, else None."""
    plain = safe_id_from_filename(name)
    return plain if plain == os.path.splitext(name)[0] else None


def sample_id_for(name: str) -> str:
    """The sample id of the input file called ``name`` (a file name, no folder).

    Examples
    --------
    >>> sample_id_for("portrait_01.png")
    'portrait_01'
    >>> sample_id_for("A.png") == sample_id_for("A.png") != sample_id_for("a.png")
    True
    """
    plain = _plain_stem(name)
    if plain is None:
        return safe_id_from_filename(name)
    if plain.lower() == plain:
        return plain
    return f"{plain[:_MAX_STEM]}-{_name_digest(name)}"


def legacy_ids(name: str) -> tuple[str, ...]:
    """Ids that earlier versions may have given ``name`` and that differ from today's
    (:func:`sample_id_for`): the bare stem, and the stem with the name's hash."""
    plain = safe_id_from_filename(name)
    current = sample_id_for(name)
    forms = (plain, f"{plain[:_MAX_STEM]}-{_name_digest(name)}")
    return tuple(dict.fromkeys(form for form in forms if form != current))
