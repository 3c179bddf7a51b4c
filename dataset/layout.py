"""Names of the dataset layout and the errors every dataset module raises.

Layout under a dataset root (README.md, "Dataset layout"; docs/dataset.md)::

    <root>/fg/<id>.png          padded foreground colour F, 8-bit RGB
    <root>/alpha/<id>.png       refined alpha, 8-bit gray (16-bit on request)
    <root>/raw_alpha/<id>.png   alpha before refinement (optional, for audit)
    <root>/error_maps/<id>.png  error-map picture (optional)
    <root>/meta/<id>.json       everything known about the sample; written LAST
    <root>/manifest.jsonl       one line per accepted sample, rebuildable from meta/
    <root>/rejected/...         the same layout for samples the quality gate rejected
    <root>/quarantine/...       unreadable meta files moved aside by ``verify --repair``
    <root>/.lock                the lock every writer takes to publish a sample
"""
from __future__ import annotations

import errno

__all__ = ["SCHEMA", "MAX_ID_LENGTH", "MAX_DATASET_NAME_LENGTH", "MANIFEST_NAME", "LOCK_NAME",
           "REJECTED_DIR", "QUARANTINE_DIR", "IMAGE_KINDS", "META_DIR", "DatasetError",
           "SampleIdError", "is_disk_full"]

#: Schema tag stored in every meta file, so later versions can read old datasets.
SCHEMA = "ld-portrait/sample@1"
#: Longest accepted sample id (file names stay well below every file system's limit).
MAX_ID_LENGTH = 128
#: Longest accepted dataset folder name (see :func:`~.ids.validate_dataset_name`).
MAX_DATASET_NAME_LENGTH = 100

MANIFEST_NAME = "manifest.jsonl"
LOCK_NAME = ".lock"
REJECTED_DIR = "rejected"
QUARANTINE_DIR = "quarantine"
IMAGE_KINDS = ("fg", "alpha", "raw_alpha", "error_maps")
META_DIR = "meta"
TMP_PREFIX = ".tmp-"


class DatasetError(RuntimeError):
    """The dataset root cannot be used (unwritable, not a folder, disk full, ...)."""


class SampleIdError(ValueError):
    """A sample id that is not a safe file name; the message says what is wrong."""


def is_disk_full(error: BaseException) -> bool:
    """True when ``error`` is an OSError for a full disk or an exhausted quota.

    ``ENOSPC`` (no space left on device) and ``EDQUOT`` (disk quota exceeded, where the
    platform defines it) both mean "free space and run again", which messages suggest.
    """
    codes = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
    return isinstance(error, OSError) and error.errno in codes
