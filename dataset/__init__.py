"""The matting dataset on disk: ids, PNG files, the writer, records, reading, verify, stats, sheets.

Modules (the public names of layout ... stats are importable from this package itself):

``layout``      folder and file names, ``DatasetError`` / ``SampleIdError``
``ids``         sample ids and dataset folder names
``safeio``      root lock, atomic writes honouring the umask, symlink refusal, meta reading
``jsonvalues``  JSON for meta and the manifest; the nodes' JSON text inputs
``writer``      ``DatasetWriter``: atomic samples, resume, several writers, the manifest
``records``     ``SampleRecord`` -> meta -> accepted / rejected (save node and ``refine``)
``reading``     complete ids, samples as arrays, meta, manifest read and rebuild
``verify``      consistency check and repair
``stats``       counts, histograms and coverage
``imagefiles``  checked PNG I/O (``imageheader``: sizes from the first bytes; ``imagelimits``:
                the size limits, standard library only)
``sheet``       contact sheets; ``backgrounds`` picture folders
``export``      export to common matting-dataset layouts (``export_layouts``)
"""
import sys
import types
from importlib import import_module

# The names below are loaded on first use (PEP 562), so that importing one light module of
# this package (``ids``, ``layout``) does not load numpy and OpenCV through the others: the
# ``ld-portrait`` command and ``ld-portrait queue`` start without them.
_SOURCES = {
    "ids": ("dataset_root_in", "index_id", "safe_id_from_filename", "validate_dataset_name",
            "validate_id"),
    "jsonvalues": ("manifest_entry", "models_value", "parse_json_input"),
    "layout": ("IMAGE_KINDS", "LOCK_NAME", "MANIFEST_NAME", "MAX_DATASET_NAME_LENGTH",
               "MAX_ID_LENGTH", "META_DIR", "QUARANTINE_DIR", "REJECTED_DIR", "SCHEMA",
               "DatasetError", "SampleIdError", "is_disk_full"),
    "reading": ("Sample", "iter_meta", "list_sample_ids", "load_sample", "read_manifest",
                "rebuild_manifest", "remove_stale_temporary"),
    "records": ("KEEP_INPUT_REASON", "VERDICT_REASON", "BatchInput", "BatchOutcome",
                "SampleRecord", "SaveOutcome", "SavePolicy", "batch_records", "common_meta",
                "decide_keep", "per_image", "record_meta", "save_batch", "save_record"),
    "stats": ("DatasetStats", "dataset_stats"),
    "verify": ("DatasetReport", "Problem", "verify"),
    "writer": ("DatasetWriter", "WriteOutcome"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_MODULE_OF))


class _Package(types.ModuleType):
    """``dataset.verify`` is the function, as when this package imported it eagerly: loading
    the submodule of the same name must not replace it (the import system sets the package
    attribute of every submodule it loads)."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and name in _MODULE_OF:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "DatasetError", "SampleIdError", "is_disk_full",
    "validate_id", "index_id", "safe_id_from_filename", "validate_dataset_name",
    "dataset_root_in",
    "manifest_entry", "parse_json_input", "models_value",
    "DatasetWriter", "WriteOutcome",
    "SampleRecord", "SavePolicy", "SaveOutcome", "BatchOutcome", "BatchInput", "record_meta",
    "save_record", "save_batch", "batch_records", "common_meta", "decide_keep", "per_image",
    "KEEP_INPUT_REASON", "VERDICT_REASON",
    "Sample", "list_sample_ids", "load_sample", "iter_meta", "read_manifest",
    "rebuild_manifest", "remove_stale_temporary",
    "Problem", "DatasetReport", "verify",
    "DatasetStats", "dataset_stats",
    "MAX_ID_LENGTH", "MAX_DATASET_NAME_LENGTH", "SCHEMA",
    "LOCK_NAME", "META_DIR", "REJECTED_DIR", "QUARANTINE_DIR", "MANIFEST_NAME", "IMAGE_KINDS",
]
