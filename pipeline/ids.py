"""Sample ids for input files: a pure function of the file name.

A file's id must not depend on what else is in the folder (``a.png`` processed, then ``A.png``
added: ``a.png`` keeps its id, so it is not redone as a duplicate), and ids must differ when
ignoring letter case (datasets get copied to macOS and Windows). The rule lives in
:func:`..dataset.ids.safe_id_from_filename` (``portrait_01.png`` -> ``portrait_01``,
``A.png`` -> ``A-6dcd4ce2``, ``'my photo.png'`` -> ``'my_photo-1a2b3c4d'``).

Earlier versions gave capitalised names the bare stem (and the hashed form only to the second
of two names differing in case), so :func:`legacy_ids` lists those forms: a resumed run treats
a file as complete when its sample exists under one of them, and no sample is redone.
"""
from __future__ import annotations

from ..dataset.ids import name_digest, plain_png_stem, safe_id_from_filename

__all__ = ["sample_id_for", "legacy_ids"]

_MAX_STEM = 119  # MAX_ID_LENGTH (128) - 9 for "-" and the 8 hex digits

#: The sample id of an input file called ``name``: a pure function of the name.
sample_id_for = safe_id_from_filename


def legacy_ids(name: str) -> tuple[str, ...]:
    """Ids that earlier versions may have given ``name`` and that differ from today's
    (:func:`sample_id_for`): the bare stem of a capitalised name, and the stem with the name's
    hash (what they gave the second of two names that differ only by case)."""
    plain = plain_png_stem(name)
    if plain is None:
        return ()
    current = sample_id_for(name)
    forms = (plain, f"{plain[:_MAX_STEM]}-{name_digest(name)}")
    return tuple(dict.fromkeys(form for form in forms if form != current))
