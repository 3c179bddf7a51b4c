"""Export a dataset to the folder layout of a common matting dataset (AM-2K, P3M-10k,
Composition-1k), compositing each foreground over backgrounds.

``export_dataset(root, dest, ExportOptions(layout="am2k"))`` reads the accepted samples of an
ld-portrait dataset (``fg/``, ``alpha/``, ``meta/``), splits the foregrounds into training and
validation with a seeded shuffle, and writes for each foreground ``per_fg`` composites
``I = F * alpha + B * (1 - alpha)`` with the files its layout has (see :mod:`.export_layouts`).

- Deterministic: the split, the order and every background depend only on the options (the
  background of composite ``k`` of the foreground at shuffled position ``i`` is number
  ``i * per_fg + k`` of the run), so two runs give the same bytes.
- Resumable: every file is written atomically (temporary file + rename) and a file that exists
  is complete, so a re-run skips it. The options are recorded in ``DEST/ld_portrait_export.json``
  first; a re-run with other options is refused instead of mixing two exports.
- Nested subsets (``limits=(1000, 5000)``): ``DEST/limit_01000/``, ``DEST/limit_05000/``, each a
  complete layout whose training foregrounds are the first N of the same shuffled order (each a
  prefix of the next) and whose validation split is the same; files a smaller subset already
  has are hard-linked (copied where links are not possible), not computed again.
- Each subset records its ordered foreground ids in ``ld_portrait_split.json``, written last.
- Nothing is written outside ``dest``; ``dest`` may not be inside the dataset nor contain it.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..base.composite import background_seed, procedural_background
from ..base.trimap import trimap_from_alpha
from .export_layouts import IMAGE_FORMATS, LAYOUTS, get_layout
from .imagefiles import to_uint8
from .layout import DatasetError
from .safeio import create_temporary, write_file_atomic

__all__ = ["ExportError", "ExportOptions", "ExportResult", "ExportEvent", "SETTINGS_NAME",
           "SPLIT_NAME", "parse_limits", "plan_split", "export_dataset"]

#: Options of the export, in the export root (written before any image).
SETTINGS_NAME = "ld_portrait_export.json"
#: Ordered foreground ids of one subset (written after all of its images).
SPLIT_NAME = "ld_portrait_split.json"
_FORMAT = "ld-portrait/export@1"


class ExportError(ValueError):
    """Bad input to an export: the message says what was wrong and what to do."""


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What :func:`export_dataset` writes.

    Attributes
    ----------
    layout : str
        ``"am2k"``, ``"p3m"`` or ``"comp1k"`` (see :mod:`.export_layouts`).
    backgrounds : str or Path, optional
        Folder of background pictures (read with :class:`.backgrounds.BackgroundFolder`);
        procedural backgrounds (:func:`..base.composite.procedural_background`) when None.
    per_fg : int
        Composites per foreground, >= 1.
    split : float
        Fraction of the foregrounds in the training split, in (0, 1]; the rest is validation.
    seed : int
        Seed of the split order and the backgrounds, >= 0.
    limits : tuple of int
        Sizes of nested training subsets (foregrounds); empty = one export of everything.
    image_format : str, optional
        ``"jpg"`` or ``"png"`` for the composites; None = what the layout's dataset ships
        (JPEG for AM-2K and P3M, PNG for Composition-1k).
    jpeg_quality : int
        1..100, used for JPEG composites.
    trimap_band : int
        Band of the trimaps in pixels (:func:`..base.trimap.trimap_from_alpha`: pixels this
        close to a soft pixel or a 0/1 edge are unknown); 0 = 1 % of the longer side, at
        least 3.
    """

    layout: str
    backgrounds: str | Path | None = None
    per_fg: int = 1
    split: float = 0.9
    seed: int = 0
    limits: tuple = ()
    image_format: str | None = None
    jpeg_quality: int = 95
    trimap_band: int = 0

    def checked(self) -> "ExportOptions":
        """These options with defaults filled in; raises :class:`ExportError` when invalid."""
        _known_layout(self.layout, LAYOUTS, "layout")
        _whole(self.per_fg, "per_fg", 1)
        _whole(self.seed, "seed", 0)
        _whole(self.trimap_band, "trimap_band", 0)
        if not 1 <= _whole(self.jpeg_quality, "jpeg_quality", 1) <= 100:
            raise ExportError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}.")
        split = _split_fraction(self.split)
        image_format = self.image_format or get_layout(self.layout).default_image_format
        if image_format not in IMAGE_FORMATS:
            raise ExportError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got "
                              f"{image_format!r}.")
        backgrounds = None if self.backgrounds is None else str(Path(self.backgrounds).resolve())
        return dataclasses.replace(self, image_format=image_format, limits=_sorted_limits(self.limits),
                                   split=split, backgrounds=backgrounds)

    def to_json(self) -> dict:
        return _options_json(self)


def _whole(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ExportError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)


def _known_layout(layout: str, layouts, what: str) -> None:
    if layout not in layouts:
        raise ExportError(f"unknown {what} {layout!r}; choose one of {', '.join(layouts)}.")


def _split_fraction(value) -> float:
    """The training split's fraction, checked to be in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ExportError(f"split must be a fraction in (0, 1], e.g. 0.9, got {value!r}.")
    return float(value)


def _sorted_limits(limits) -> tuple:
    """Nested subset sizes, checked (whole numbers >= 1, all different) and sorted."""
    limits = tuple(limits)
    for value in limits:
        _whole(value, "each limit", 1)
    if len(set(limits)) != len(limits):
        raise ExportError(f"limits must be different sizes, got {list(limits)}.")
    return tuple(sorted(limits))


def _options_json(options) -> dict:
    """The options of an export (folder or shards) as written into its settings file: the
    dataclass's fields, ``limits`` as a JSON list."""
    data = dataclasses.asdict(options)
    data["limits"] = list(options.limits)
    return data


def parse_limits(text: str) -> tuple:
    """``"1000,5000,20000"`` -> ``(1000, 5000, 20000)`` (sorted).

    Raises
    ------
    ExportError
        Empty items, non-numbers, values < 1 or repeated values.
    """
    parts = [part.strip() for part in str(text).split(",")]
    values = []
    for part in parts:
        try:
            value = int(part.replace("_", ""))
        except ValueError:
            raise ExportError(f"--limit takes whole numbers separated by commas, e.g. "
                              f"1000,5000,20000; {part!r} is not one.") from None
        if value < 1:
            raise ExportError(f"--limit sizes must be >= 1, got {value}.")
        values.append(value)
    if len(set(values)) != len(values):
        raise ExportError(f"--limit sizes must be different, got {text!r}.")
    return tuple(sorted(values))


@dataclasses.dataclass(frozen=True)
class ExportEvent:
    """Progress of one composite: ``done`` of ``total``, ``outcome`` one of ``written``,
    ``linked`` (all its files came from a smaller subset), ``skipped`` (already complete),
    ``failed``, ``left out`` (its sample failed already, in a smaller subset or another
    composite; reported once); ``name`` the composite's file stem."""

    done: int
    total: int
    outcome: str
    name: str
    detail: str = ""


@dataclasses.dataclass
class ExportResult:
    """What a run did. ``subsets`` maps a subset folder (relative to ``dest``; ``"."`` without
    limits) to the number of training and validation foregrounds written there (and
    ``failed``: how many planned ones are missing, when any); ``failures`` has one line per
    sample that could not be written, naming the subsets it is missing from."""

    dest: str
    layout: str
    counts: dict
    subsets: dict
    failures: list
    interrupted: bool = False

    def to_text(self) -> str:
        parts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.counts.items()))
        lines = [f"export ({self.layout}) -> {self.dest}: {parts or 'nothing to do'}"]
        for folder, sizes in self.subsets.items():
            missing = (f" ({sizes['failed']} failed, not written)" if sizes.get("failed")
                       else "")
            lines.append(f"  {'everything' if folder == '.' else folder}: {sizes['train']} "
                         f"training and {sizes['validation']} validation foreground(s)"
                         f"{missing}")
        for failure in self.failures[:20]:
            lines.append(f"  failed {failure}")
        if self.interrupted:
            lines.append("  interrupted: run the same command again to continue")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------

def plan_split(ids, split: float, seed: int) -> tuple[list, list]:
    """Shuffle ``ids`` with ``seed`` and cut them into (training, validation).

    The training part has ``round(len(ids) * split)`` ids (at least 1). The same arguments give
    the same lists; the order is the export order (nested subsets take its prefixes).
    """
    ids = sorted(ids)
    order = [ids[i] for i in np.random.default_rng(int(seed)).permutation(len(ids))]
    n_train = min(len(order), max(1, int(round(len(order) * float(split)))))
    return order[:n_train], order[n_train:]


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One composite to write: its files (kind -> path relative to the subset root)."""

    split: str
    sample_id: str
    k: int
    position: int           # background number of this composite in the run
    files: dict


@dataclasses.dataclass
class _Subset:
    folder: str             # relative to dest ("." without limits)
    train: list
    validation: list
    units: list


def _nested_subsets(ids, options, unit: str) -> tuple[list, list, list]:
    """``(train, validation, [(folder, training ids)])``: the split of ``ids`` and the subsets to
    write, one folder ``limit_<n>`` per limit (numbers padded to one width) holding the first n
    training ids, or ``"."`` with all of them without limits. A limit above the training split
    is an :class:`ExportError` that counts the training ``unit`` (foregrounds, samples)."""
    train, validation = plan_split(ids, options.split, options.seed)
    limits = options.limits
    if limits and limits[-1] > len(train):
        raise ExportError(
            f"--limit {limits[-1]} is more than the {len(train)} training {unit}(s) this "
            f"dataset has with --split {options.split:g} ({len(ids)} in all); use sizes up to "
            f"{len(train)}.")
    width = len(str(limits[-1])) if limits else 0
    plans = [(f"limit_{limit:0{width}d}", train[:limit]) for limit in limits] or [(".", train)]
    return train, validation, plans


def _plan_subsets(ids, options: ExportOptions) -> list:
    layout = get_layout(options.layout)
    train, validation, plans = _nested_subsets(ids, options, "foreground")
    index_of = {sample_id: i for i, sample_id in enumerate(train + validation)}
    subsets = []
    for folder, train_ids in plans:
        units = []
        for split, part in (("train", train_ids), ("validation", validation)):
            for sample_id in part:
                for k in range(options.per_fg):
                    files = layout.relative_files(split, sample_id, k, options.per_fg,
                                                  options.image_format)
                    units.append(_Unit(split, sample_id, k, index_of[sample_id] * options.per_fg
                                       + k, files))
        subsets.append(_Subset(folder, list(train_ids), list(validation), units))
    return subsets


# --------------------------------------------------------------------------------------------
# Checks of the folders
# --------------------------------------------------------------------------------------------

def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_source(root) -> tuple[Path, list]:
    from . import list_sample_ids

    root = Path(root).expanduser()
    if not root.is_dir():
        raise ExportError(f"{root}: no such dataset folder.")
    ids = list_sample_ids(root)
    if ids:
        return root.resolve(), ids
    if (root / "meta").is_dir():
        raise ExportError(f"{root}: the dataset has no accepted samples to export (meta/ is "
                          "empty, or everything was rejected by the quality gate).")
    hint = ""
    if (root / "dataset" / "meta").is_dir():
        hint = f" It has a dataset/ folder: did you mean {root / 'dataset'}?"
    raise ExportError(f"{root}: not an ld-portrait dataset (no meta/ folder). Point at the "
                      f"folder `ld-portrait refine` or `demo` wrote.{hint}")


def _check_dest(dest, root: Path, settings: dict) -> Path:
    dest = Path(dest).expanduser()
    real = dest.resolve()
    if _is_within(real, root):
        raise ExportError(f"{dest} is inside the dataset {root}; choose a folder outside it.")
    if _is_within(root, real):
        raise ExportError(f"{dest} contains the dataset {root}; choose a folder that does not.")
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} exists and is not a folder.")
    settings_path = dest / SETTINGS_NAME
    if settings_path.is_file():
        try:
            recorded = json.loads(settings_path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise ExportError(f"{settings_path}: unreadable ({error}); delete it or choose an "
                              "empty DEST.") from None
        if recorded.get("source") != settings["source"]:
            raise ExportError(f"{dest} holds an export of another dataset "
                              f"({recorded.get('source')}); choose an empty DEST.")
        if recorded.get("options") != settings["options"]:
            differences = sorted(key for key in settings["options"]
                                 if recorded.get("options", {}).get(key)
                                 != settings["options"][key])
            raise ExportError(f"{dest} holds an export made with other options "
                              f"({', '.join(differences)}); run with the same options to "
                              "resume, or choose an empty DEST.")
    elif dest.is_dir() and any(not entry.name.startswith(".") for entry in dest.iterdir()):
        raise ExportError(f"{dest} is not empty and holds no ld-portrait export; choose an "
                          "empty or new folder.")
    return real


class _Writer:
    """Atomic writes, refusing any path that resolves outside ``dest``."""

    def __init__(self, dest: Path):
        self.dest = dest
        self._checked: set = set()

    def folder(self, path: Path) -> Path:
        """Create the folders of ``path`` below ``dest`` one by one, refusing links (a link
        could lead outside, and ``mkdir`` would then create folders there)."""
        parent = path.parent
        if parent not in self._checked:
            if not _is_within(parent, self.dest):
                raise ExportError(f"{parent} is outside {self.dest}; refusing to write there.")
            current = self.dest
            for part in parent.relative_to(self.dest).parts:
                current = current / part
                if current.is_symlink():
                    raise ExportError(f"{current} is a link (it may lead outside "
                                      f"{self.dest}); refusing to write through it.")
                if not current.is_dir():
                    try:
                        current.mkdir()
                    except FileExistsError:  # another worker process made it meanwhile
                        if current.is_symlink() or not current.is_dir():
                            raise
            self._checked.add(parent)
        if path.is_symlink():
            raise ExportError(f"{path} is a link; refusing to write through it.")
        return path

    def write(self, path: Path, payload: bytes) -> None:
        write_file_atomic(self.folder(path), payload)

    def link(self, source: Path, path: Path) -> None:
        """Hard-link ``source`` as ``path`` (a copy where links fail), atomically."""
        self.folder(path)
        fd, tmp = create_temporary(path.parent, path.suffix)  # a free name, umask honoured
        os.close(fd)
        try:
            try:
                os.unlink(tmp)
                os.link(source, tmp)
            except OSError:  # no hard links here (another file system, FAT): copy
                shutil.copyfile(source, tmp)
            os.replace(tmp, path)
            # rename() does nothing when both names already link one file (another worker
            # linked the same source meanwhile): the temporary name is then left to remove.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


# --------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------

def _band(options: ExportOptions, height: int, width: int) -> int:
    return options.trimap_band or max(3, int(round(max(height, width) / 100)))


def _encode(pixels: np.ndarray, suffix: str, jpeg_quality: int) -> bytes:
    """uint8 gray [H, W] or RGB [H, W, 3] -> PNG or JPEG bytes."""
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[..., ::-1])  # OpenCV wants BGR
    if suffix == "jpg":
        ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, buffer = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"encoding a {suffix.upper()} file failed.")
    return buffer.tobytes()


class _Pixels:
    """Computes the arrays of composites, caching the current foreground."""

    def __init__(self, root: Path, options: ExportOptions):
        self.root = root
        self.options = options
        self._sample_id = None
        self._arrays = None
        self.folder = None
        if options.backgrounds is not None:
            from .backgrounds import BackgroundFolder, list_background_files

            self.folder = BackgroundFolder(list_background_files(options.backgrounds),
                                           seed=options.seed)

    def foreground(self, sample_id: str):
        """(fg uint8 [H,W,3], alpha uint8 [H,W]) of a sample."""
        if sample_id != self._sample_id:
            from . import load_sample

            sample = load_sample(self.root, sample_id)
            if sample.fg is None or sample.alpha is None:
                raise ValueError(f"sample {sample_id} has no fg or alpha file.")
            if sample.fg.shape[:2] != sample.alpha.shape:
                raise ValueError(f"sample {sample_id}: fg is {sample.fg.shape[1]}x"
                                 f"{sample.fg.shape[0]} but alpha is {sample.alpha.shape[1]}x"
                                 f"{sample.alpha.shape[0]}.")
            self._arrays = (to_uint8(sample.fg), to_uint8(sample.alpha))
            self._sample_id = sample_id
        return self._arrays

    def background(self, position: int, height: int, width: int) -> np.ndarray:
        """uint8 RGB [height, width, 3] background number ``position`` of the run."""
        if self.folder is not None:
            picture, _ = self.folder.pick(position, height, width)
        else:
            picture = procedural_background("random", height, width,
                                            background_seed(self.options.seed, position))
        return to_uint8(picture)

    def files(self, unit: _Unit, kinds) -> dict:
        """Kind -> uint8 array for the requested kinds of ``unit``."""
        fg, alpha = self.foreground(unit.sample_id)
        height, width = alpha.shape
        out = {}
        need_bg = bool({"image", "bg"} & set(kinds))
        bg = self.background(unit.position, height, width) if need_bg else None
        for kind in kinds:
            if kind == "image":
                weight = alpha.astype(np.float32)[..., None] / np.float32(255.0)
                image = fg.astype(np.float32) * weight + bg.astype(np.float32) * (1 - weight)
                out[kind] = np.clip(image + 0.5, 0, 255).astype(np.uint8)
            elif kind in ("mask", "alpha"):
                out[kind] = alpha
            elif kind == "fg":
                out[kind] = fg
            elif kind == "bg":
                out[kind] = bg
            elif kind == "trimap":
                out[kind] = trimap_from_alpha(alpha, _band(self.options, height, width))
        return out


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def _settings(root: Path, options: ExportOptions) -> dict:
    return {"format": _FORMAT, "source": str(root), "options": options.to_json()}


def export_dataset(root, dest, options: ExportOptions, *,
                   progress: Callable[[ExportEvent], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   workers: int = 1) -> ExportResult:
    """Export the accepted samples of ``root`` to ``dest`` in ``options.layout``.

    Parameters
    ----------
    root : str or Path
        An ld-portrait dataset (the folder with ``fg/``, ``alpha/``, ``meta/``).
    dest : str or Path
        Export folder: new, empty, or holding an export made with the same options (resumed).
    options : ExportOptions
    progress : callable, optional
        Called with an :class:`ExportEvent` after each composite.
    should_stop : callable, optional
        Polled between composites; when it returns True the run stops (everything written is
        complete) and the result says ``interrupted``.
    workers : int
        Composites computed and written by that many processes
        (:mod:`..pipeline.workers`); the files, the result and the events are those of one.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        Not a dataset, nothing to export, bad options, a ``--limit`` larger than the training
        split, ``dest`` inside ``root`` (or the reverse), a ``dest`` holding something else, an
        unusable background folder.
    OSError
        ``dest`` cannot be written (permissions, disk full).
    """
    options = options.checked()
    root, ids = _check_source(root)
    if options.backgrounds is not None:
        _check_backgrounds(options.backgrounds)
    subsets = _plan_subsets(ids, options)
    settings = _settings(root, options)
    dest_real = _check_dest(dest, root, settings)
    dest_real.mkdir(parents=True, exist_ok=True)
    writer = _Writer(dest_real)
    writer.write(dest_real / SETTINGS_NAME, (json.dumps(settings, indent=1) + "\n").encode())
    pixels = _Pixels(root, options)
    total = sum(len(subset.units) for subset in subsets)
    result = ExportResult(str(dest_real), options.layout, {}, {}, [])
    done = 0
    finished = []  # subset roots already complete, to link from
    failed: dict[str, _Failure] = {}  # sample id -> why, and the subsets it is missing from
    pool = _export_pool(root, dest_real, options, min(workers, total))
    try:
        for subset in subsets:
            base = dest_real / subset.folder if subset.folder != "." else dest_real
            units = iter(subset.units)
            # Units taken from the plan, in order, with whether a worker has them.
            ahead: collections.deque = collections.deque()
            while True:
                while pool is None and not ahead or pool is not None and not pool.full():
                    if should_stop is not None and should_stop():
                        result.interrupted = True
                        break
                    unit = next(units, None)
                    if unit is None:
                        break
                    handed_out = pool is not None and unit.sample_id not in failed
                    if handed_out:
                        pool.submit(unit, base, list(finished))
                    ahead.append((unit, handed_out))
                if not ahead:
                    break
                unit, handed_out = ahead.popleft()
                write = None  # a unit of a sample that already failed is not written
                if handed_out:  # taken even when its sample failed meanwhile: results come in order
                    write = pool.next_result
                elif unit.sample_id not in failed:
                    write = functools.partial(_write_unit, unit, base, finished, pixels, writer, options)
                outcome, stem, detail = _settle_unit(unit, subset.folder, write, failed)
                done += 1
                result.counts[outcome] = result.counts.get(outcome, 0) + 1
                if progress is not None:
                    progress(ExportEvent(done, total, outcome, stem, detail))
            if result.interrupted:
                result.failures = _failure_lines(failed, limited=bool(options.limits))
                return result
            result.subsets[subset.folder] = _finish_subset(subset, base, failed, writer, options)
            finished.append(base)
    except BaseException:  # a second Ctrl-C, a fatal error: stop the workers at once
        if pool is not None:
            pool.stop_now()
        raise
    finally:
        if pool is not None:
            pool.close()
    result.failures = _failure_lines(failed, limited=bool(options.limits))
    return result


def _export_pool(root: Path, dest: Path, options: ExportOptions, workers: int):
    """An ordered pool of ``workers`` processes that write units (:func:`_export_in_worker`),
    or None for one."""
    if workers <= 1:
        return None
    from .workers import OrderedPool, WorkerTask

    return OrderedPool(WorkerTask(_export_worker_setup, (root, dest, options), _export_in_worker),
                       workers)


def _settle_unit(unit, folder: str, write: Callable[[], str] | None,
                 failed: dict) -> tuple[str, str, str]:
    """(outcome, stem, detail) of one unit of the subset ``folder``, after ``write()`` (the
    pool's next result, or writing here; None: nothing to write). A sample that cannot be read
    is recorded in ``failed`` and the run goes on; its other units are "left out"."""
    stem = Path(unit.files.get("image", next(iter(unit.files.values())))).stem
    detail, error = "", None
    try:
        if write is not None:
            outcome = write()
    except ExportError:
        raise
    except (ValueError, KeyError, DatasetError) as caught:  # unreadable: go on
        error = caught
    if unit.sample_id in failed:  # nested subsets: one broken sample, one report
        outcome, detail = "left out", f"{unit.sample_id} failed above"
    elif error is not None:
        outcome, detail = "failed", str(error)
        failed[unit.sample_id] = _Failure(stem, str(error), [])
    if unit.sample_id in failed and folder not in failed[unit.sample_id].subsets:
        failed[unit.sample_id].subsets.append(folder)
    return outcome, stem, detail


def _finish_subset(subset, base: Path, failed: dict, writer: "_Writer", options: ExportOptions) -> dict:
    """Write the name lists (and, for a complete subset, the split record) of a subset whose
    units are all settled; return its counts for :attr:`ExportResult.subsets`: what the folder
    holds, not what was planned (a failed sample is not in it)."""
    written = _without(subset, failed)
    _write_name_lists(written, base, writer, options)
    if not any(sample_id in failed for sample_id in subset.train + subset.validation):
        _write_split_record(subset, base, writer, options)  # only for a complete subset
    counts = {"train": len(written.train), "validation": len(written.validation)}
    missing = len(subset.train) + len(subset.validation) - len(written.train) - len(written.validation)
    if missing:
        counts["failed"] = missing
    return counts


@dataclasses.dataclass
class _Failure:
    """A sample whose composites could not be written: the first one's stem, the reason, and
    the subset folders it is therefore missing from."""

    stem: str
    reason: str
    subsets: list


def _failure_lines(failed: dict, *, limited: bool) -> list[str]:
    """One line per failed sample (``ExportResult.failures``), however many subsets hold it."""
    lines = []
    for failure in failed.values():
        where = f" (missing from {', '.join(failure.subsets)})" if limited else ""
        lines.append(f"{failure.stem}: {failure.reason}{where}")
    return lines


def _without(subset: _Subset, failed: dict) -> _Subset:
    """``subset`` less the samples in ``failed`` (whose files were not written)."""
    return _Subset(subset.folder, [i for i in subset.train if i not in failed],
                   [i for i in subset.validation if i not in failed],
                   [unit for unit in subset.units if unit.sample_id not in failed])


def _check_backgrounds(folder: str) -> None:
    from .backgrounds import list_background_files

    path = Path(folder)
    if not path.is_dir():
        raise ExportError(f"--backgrounds {folder}: no such folder.")
    if not list_background_files(path):
        raise ExportError(f"--backgrounds {folder}: no pictures in it (.png, .jpg, .webp, ...).")


def _export_worker_setup(root: Path, dest: Path, options: ExportOptions):
    """A worker process's own pixel source and writer (atomic writes into the same DEST)."""
    return _Pixels(root, options), _Writer(dest), options


def _export_in_worker(state, unit: _Unit, base: Path, earlier: list) -> str:
    pixels, writer, options = state
    return _write_unit(unit, base, earlier, pixels, writer, options)


def _write_unit(unit: _Unit, base: Path, earlier: list, pixels: _Pixels, writer: _Writer,
                options: ExportOptions) -> str:
    """Write the missing files of one composite; returns the outcome."""
    missing = {kind: rel for kind, rel in unit.files.items() if not (base / rel).is_file()}
    if not missing:
        return "skipped"
    to_compute = {}
    for kind, rel in missing.items():
        source = next((folder / rel for folder in earlier if (folder / rel).is_file()), None)
        if source is not None:
            writer.link(source, base / rel)
        else:
            to_compute[kind] = rel
    if not to_compute:
        return "linked"
    arrays = pixels.files(unit, to_compute)
    for kind, rel in to_compute.items():
        suffix = rel.rsplit(".", 1)[-1]
        writer.write(base / rel, _encode(arrays[kind], suffix, options.jpeg_quality))
    return "written"


def _write_name_lists(subset: _Subset, base: Path, writer: _Writer,
                      options: ExportOptions) -> None:
    """Composition-1k's ``*_fg_names.txt`` / ``*_bg_names.txt``, in export order."""
    layout = get_layout(options.layout)
    for split, ids in (("train", subset.train), ("validation", subset.validation)):
        where = layout.split(split)
        if where.name_lists is None or not ids:
            continue
        fg_names, bg_names = [], []
        for unit in subset.units:
            if unit.split != split:
                continue
            if unit.k == 0:
                fg_names.append(Path(unit.files["fg"]).name)
            bg_names.append(Path(unit.files["bg"]).name)
        for name, lines in zip(where.name_lists, (fg_names, bg_names)):
            writer.write(base / where.folder / name, ("\n".join(lines) + "\n").encode())


def _write_split_record(subset: _Subset, base: Path, writer: _Writer,
                        options: ExportOptions) -> None:
    record = {"format": _FORMAT, "layout": options.layout, "per_fg": options.per_fg,
              "train": subset.train, "validation": subset.validation}
    writer.write(base / SPLIT_NAME, (json.dumps(record, indent=1) + "\n").encode())
