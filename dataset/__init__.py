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
``imagefiles``  checked PNG I/O (``imageheader``: sizes from the first bytes)
``sheet``       contact sheets; ``backgrounds`` picture folders
``export``      export to common matting-dataset layouts (``export_layouts``)
"""
from .ids import (dataset_root_in, index_id, safe_id_from_filename, validate_dataset_name,
                  validate_id)
from .jsonvalues import manifest_entry, models_value, parse_json_input
from .layout import (IMAGE_KINDS, LOCK_NAME, MANIFEST_NAME, MAX_DATASET_NAME_LENGTH,
                     MAX_ID_LENGTH, META_DIR, QUARANTINE_DIR, REJECTED_DIR, SCHEMA,
                     DatasetError, SampleIdError, is_disk_full)
from .reading import (Sample, iter_meta, list_sample_ids, load_sample, read_manifest,
                      rebuild_manifest, remove_stale_temporary)
from .records import (KEEP_INPUT_REASON, VERDICT_REASON, BatchInput, BatchOutcome, SampleRecord,
                      SaveOutcome, SavePolicy, batch_records, common_meta, decide_keep,
                      per_image, record_meta, save_batch, save_record)
from .stats import DatasetStats, dataset_stats
from .verify import DatasetReport, Problem, verify
from .writer import DatasetWriter, WriteOutcome

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
