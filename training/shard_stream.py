"""Streaming training items from WebDataset tar shards (``ld-portrait dataset export
--layout webdataset``), with the augmentations of :class:`.torch_dataset.MattingDataset`.

``ShardStream("DEST/data/train-{00000..00007}-of-00008.tar")`` (or a list of paths, or
``shard_urls(DEST, "train")``) is a ``torch.utils.data.IterableDataset``: put it in a
``DataLoader`` with any number of workers; each worker reads whole shards of its own
(webdataset's ``split_by_worker``), so each sample comes once per epoch. Items are the dicts of
:func:`.torch_dataset.make_item` plus ``id`` (the sample id).

Randomness: the item of sample ``id`` in epoch ``e`` draws from ``numpy.random.default_rng(
[seed, e, crc32(id), augment])``, so it does not depend on the worker, the shard order or the
number of workers; call :meth:`ShardStream.set_epoch` before each epoch. Shard order is
shuffled per epoch with ``shuffle_shards=True`` (seeded the same way).

The images are decoded as :func:`..dataset.load_sample` reads them (float32 in 0..1: 8-bit
values / 255, 16-bit / 65535), so a streamed sample's arrays equal the folder reader's.
``webdataset`` is imported when a stream is created, with an error naming the package if it is
missing.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch

from ..dataset.export_wds import id_from_key
from .torch_dataset import AugmentOptions, background_files_in, make_item

__all__ = ["ShardStream", "shard_urls", "decode_png", "decode_sample", "require_webdataset"]


def require_webdataset():
    """The ``webdataset`` module, or ImportError naming the package to install."""
    try:
        import webdataset
    except ImportError:
        raise ImportError("streaming tar shards needs webdataset, which is not installed: run "
                          "`pip install webdataset`.") from None
    return webdataset


def shard_urls(export_root, split: str = "train") -> list[str]:
    """The shard files of ``split`` in an export folder (``DEST`` or ``DEST/limit_N``), in
    order.

    Raises
    ------
    ValueError
        No such shards (not a webdataset export, or an export without that split).
    """
    folder = Path(export_root) / "data"
    paths = sorted(str(path) for path in folder.glob(f"{split}-*-of-*.tar"))
    if not paths:
        raise ValueError(f"{folder}: no {split} shards ({split}-NNNNN-of-NNNNN.tar); point at "
                         "the folder `ld-portrait dataset export --layout webdataset` wrote "
                         "(or one of its limit_N subsets).")
    return paths


def decode_png(payload: bytes, *, gray: bool, name: str = "image") -> np.ndarray:
    """PNG bytes -> float32 in 0..1: gray [H, W], or RGB [H, W, 3]."""
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{name}: not a readable PNG.")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{name}: unsupported sample type {image.dtype}.")
    scale = np.float32(255.0 if image.dtype == np.uint8 else 65535.0)
    if gray:
        if image.ndim != 2:
            raise ValueError(f"{name}: expected a gray PNG, got {image.shape[2]} channels.")
        return image.astype(np.float32) / scale
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"{name}: expected a colour PNG.")
    return np.ascontiguousarray(image[..., 2::-1]).astype(np.float32) / scale


def decode_sample(sample: dict) -> tuple[str, np.ndarray, np.ndarray, dict]:
    """A raw webdataset sample (``__key__``, ``fg.png``, ``alpha.png``, ``json`` bytes) ->
    (id, fg float32 [H, W, 3], alpha float32 [H, W], meta)."""
    key = sample.get("__key__", "?")
    missing = [part for part in ("fg.png", "alpha.png", "json") if part not in sample]
    if missing:
        raise ValueError(f"sample {key}: no {', '.join(missing)} in the shard "
                         f"({sample.get('__url__', 'unknown shard')}).")
    meta = json.loads(sample["json"])
    sample_id = meta.get("id", id_from_key(key)) if isinstance(meta, dict) else id_from_key(key)
    fg = decode_png(sample["fg.png"], gray=False, name=f"{sample_id}.fg.png")
    alpha = decode_png(sample["alpha.png"], gray=True, name=f"{sample_id}.alpha.png")
    if fg.shape[:2] != alpha.shape:
        raise ValueError(f"sample {sample_id}: fg and alpha differ in size.")
    return sample_id, fg, alpha, meta


class ShardStream(torch.utils.data.IterableDataset):
    """Augmented training items streamed from WebDataset shards.

    Parameters
    ----------
    urls : str or list of str
        Shard paths or a brace pattern (``.../train-{00000..00007}-of-00008.tar``).
    options : AugmentOptions, optional
    backgrounds : str or Path, optional
        Folder of background pictures; procedural backgrounds when None.
    seed : int
    augment : bool
        False for validation (as :class:`.torch_dataset.MattingDataset`).
    shuffle_shards : bool
        Visit the shards in a seeded order that changes per epoch.
    """

    def __init__(self, urls, *, options: AugmentOptions | None = None, backgrounds=None,
                 seed: int = 0, augment: bool = True, shuffle_shards: bool = False):
        require_webdataset()
        if isinstance(urls, (str, Path)):
            urls = str(urls)
        else:
            urls = [str(url) for url in urls]
            if not urls:
                raise ValueError("ShardStream needs at least one shard.")
        self.urls = urls
        self.options = options or AugmentOptions()
        self.seed = int(seed)
        self.augment = bool(augment)
        self.shuffle_shards = bool(shuffle_shards)
        self.epoch = 0
        self.background_files = background_files_in(backgrounds)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, sample_id: str) -> np.random.Generator:
        epoch = self.epoch if self.augment else 0
        return np.random.default_rng([self.seed, epoch, zlib.crc32(sample_id.encode()),
                                      int(self.augment)])

    def _samples(self):
        wds = require_webdataset()
        # Shard shuffling by our own seeded permutation (webdataset's would not follow epochs).
        urls = self.urls
        if self.shuffle_shards:
            from webdataset.shardlists import expand_urls

            urls = expand_urls(urls) if isinstance(urls, str) else list(urls)
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(urls))
            urls = [urls[i] for i in order]
        return wds.WebDataset(urls, shardshuffle=False, empty_check=False)

    def __iter__(self):
        for sample in self._samples():
            sample_id, fg, alpha, _meta = decode_sample(sample)
            item = make_item(fg, alpha, self._rng(sample_id), 0, options=self.options,
                             augment=self.augment, background_files=self.background_files)
            del item["index"]  # a stream has no index; the id names the sample
            item["id"] = sample_id
            yield item
