"""WebDataset tar shards (``layout="webdataset"`` of :mod:`.export_shards`).

Each sample is three consecutive tar members sharing the sample's key:

``<key>.fg.png``     the dataset's fg PNG, byte for byte (8-bit RGB)
``<key>.alpha.png``  the dataset's alpha PNG, byte for byte (8- or 16-bit gray)
``<key>.json``       the sample's meta file, byte for byte (its ``id`` is the sample id)

The key is the sample id with each ``.`` written as ``%2E`` (WebDataset takes everything after
the first dot of a member's name as its extension, and ids may contain dots; ``%`` is not
allowed in ids, so keys stay distinct): :func:`sample_key`, :func:`id_from_key`.
Members have a fixed owner, mode and time (0), so the same samples give the same bytes.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterable

__all__ = ["sample_key", "id_from_key", "write_tar_shard"]


def sample_key(sample_id: str) -> str:
    """WebDataset key of a sample id (dots escaped)."""
    return sample_id.replace(".", "%2E")


def id_from_key(key: str) -> str:
    """The sample id of a WebDataset key (inverse of :func:`sample_key`)."""
    return key.replace("%2E", ".")


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(payload))


def write_tar_shard(path: Path, samples: Iterable) -> None:
    """Write ``samples`` (:class:`.export_shards.SampleFiles`) to the tar file ``path``, one
    sample at a time."""
    with open(path, "wb") as handle, tarfile.open(fileobj=handle, mode="w",
                                                  format=tarfile.PAX_FORMAT) as tar:
        for sample in samples:
            key = sample_key(sample.sample_id)
            _add(tar, f"{key}.fg.png", sample.fg)
            _add(tar, f"{key}.alpha.png", sample.alpha)
            _add(tar, f"{key}.json", sample.meta_bytes)
