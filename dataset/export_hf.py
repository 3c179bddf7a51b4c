"""Parquet shards that Hugging Face ``datasets`` reads (``layout="hf"`` of
:mod:`.export_shards`).

``datasets.load_dataset("parquet", data_dir=DEST)`` finds the ``train`` and ``validation``
splits from the shard names (``data/train-00000-of-00003.parquet``) and decodes ``fg`` and
``alpha`` as images: they are ``datasets.Image`` columns (a struct of the PNG ``bytes`` and a
``path`` name), declared in the ``huggingface`` key of the Parquet schema metadata as
``datasets`` itself writes it. Columns (:data:`COLUMNS`):

``id``                 sample id
``fg``, ``alpha``      images: the dataset's PNG files byte for byte (fg 8-bit RGB; alpha 8- or
                       16-bit gray, see ``alpha_bits``)
``width``, ``height``, ``alpha_bits``
``prompt``, ``negative_prompt``, ``seed``
``attributes``, ``models``   JSON text (``json.loads``): the template's attributes, the models
``provenance_kind``, ``provenance_sha256``, ``provenance_file``   what made the sample (the
                       document is ``provenance/<sha256>.json`` of the source dataset)
``refinement_<m>``     the refinement measures of :data:`REFINEMENT_MEASURES` (null when absent)
``gate_keep``, ``gate_reasons`` (JSON list), ``gate_<m>`` the gate's measures of
                       :data:`GATE_MEASURES`
``refinement``, ``verdict``, ``meta``   JSON text of the whole records (nothing is lost when a
                       later version adds a measure)

pyarrow is imported only here, when such an export runs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .export import ExportError

__all__ = ["COLUMNS", "REFINEMENT_MEASURES", "GATE_MEASURES", "ROW_GROUP_BYTES",
           "hf_features", "sample_row", "write_parquet_shard", "require_pyarrow"]

#: Refinement measures given a column each (meta ``refinement``).
REFINEMENT_MEASURES = ("changed_fraction", "changed_pixels", "semi_before", "semi_after",
                       "interior_fixed", "pinholes_filled", "debris_removed", "frame_fade_fixed",
                       "uncertain_pixels", "uncertain_fraction")
#: Gate measures given a column each (meta ``verdict.measures``, see refine/quality.py).
GATE_MEASURES = ("foreground_fraction", "component_count", "person_count", "subject_fraction",
                 "fragment_fraction", "center_offset", "top_contact", "bottom_contact",
                 "left_contact", "right_contact", "changed_fraction", "contour_pixels",
                 "semi_pixels", "semi_per_contour", "support_fraction", "translucent_fraction",
                 "mean_support_alpha", "uncertain_pixels", "uncertain_fraction")
#: Payload of one Parquet row group: a shard is written in groups of about this size, so
#: memory stays bounded whatever the shard size.
ROW_GROUP_BYTES = 32 * 1000 * 1000

_STRINGS = ("id", "prompt", "negative_prompt", "attributes", "models", "provenance_kind",
            "provenance_sha256", "provenance_file", "gate_reasons", "refinement", "verdict",
            "meta")
_INTEGERS = ("width", "height", "alpha_bits", "seed")


def _column_types() -> dict:
    """Column -> datasets feature type name (``Image`` or a ``Value`` dtype), in order."""
    columns = {"id": "string", "fg": "Image", "alpha": "Image", "width": "int64",
               "height": "int64", "alpha_bits": "int64", "prompt": "string",
               "negative_prompt": "string", "seed": "int64", "attributes": "string",
               "models": "string", "provenance_kind": "string", "provenance_sha256": "string",
               "provenance_file": "string"}
    columns.update({f"refinement_{name}": "float64" for name in REFINEMENT_MEASURES})
    columns.update({"gate_keep": "bool", "gate_reasons": "string"})
    columns.update({f"gate_{name}": "float64" for name in GATE_MEASURES})
    columns.update({"refinement": "string", "verdict": "string", "meta": "string"})
    return columns


COLUMNS = tuple(_column_types())


def require_pyarrow():
    """``pyarrow`` and ``pyarrow.parquet``, or ExportError naming the package to install."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ExportError("--layout hf writes Parquet files with pyarrow, which is not "
                          "installed: run `pip install pyarrow`.") from None
    return pyarrow, pyarrow.parquet


def hf_features() -> dict:
    """The ``datasets.Features`` of the columns, as ``Features.to_dict()`` gives them."""
    return {name: ({"_type": "Image"} if kind == "Image" else {"dtype": kind, "_type": "Value"})
            for name, kind in _column_types().items()}


def _schema(pa):
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    arrow = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "bool": pa.bool_(), "Image": image}
    fields = [(name, arrow[kind]) for name, kind in _column_types().items()]
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features()}})}
    return pa.schema(fields, metadata=metadata)


def _json_text(value):
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _number(value):
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


def _integer(value):
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and -(1 << 63) <= value < (1 << 63) else None


def _text(value):
    return value if isinstance(value, str) else None


def sample_row(sample) -> dict:
    """The Parquet row of a :class:`.export_shards.SampleFiles`."""
    meta = sample.meta
    refinement = meta.get("refinement") if isinstance(meta.get("refinement"), dict) else {}
    verdict = meta.get("verdict") if isinstance(meta.get("verdict"), dict) else {}
    measures = verdict.get("measures") if isinstance(verdict.get("measures"), dict) else {}
    provenance = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
    row = {"id": sample.sample_id,
           "fg": {"bytes": sample.fg, "path": f"{sample.sample_id}.fg.png"},
           "alpha": {"bytes": sample.alpha, "path": f"{sample.sample_id}.alpha.png"},
           "width": _integer(meta.get("width")), "height": _integer(meta.get("height")),
           "alpha_bits": _integer(meta.get("alpha_bits")),
           "prompt": _text(meta.get("prompt")), "negative_prompt": _text(meta.get("negative")),
           "seed": _integer(meta.get("seed")),
           "attributes": _json_text(meta.get("attributes")),
           "models": _json_text(meta.get("models")),
           "provenance_kind": _text(provenance.get("kind")),
           "provenance_sha256": _text(provenance.get("sha256")),
           "provenance_file": _text(provenance.get("file"))}
    row.update({f"refinement_{name}": _number(refinement.get(name))
                for name in REFINEMENT_MEASURES})
    keep = verdict.get("keep")
    row["gate_keep"] = keep if isinstance(keep, bool) else None
    row["gate_reasons"] = _json_text(verdict.get("reasons"))
    row.update({f"gate_{name}": _number(measures.get(name)) for name in GATE_MEASURES})
    row.update({"refinement": _json_text(meta.get("refinement")),
                "verdict": _json_text(meta.get("verdict")),
                "meta": _json_text(meta)})
    return row


def write_parquet_shard(path: Path, samples: Iterable) -> None:
    """Write ``samples`` (:class:`.export_shards.SampleFiles`) to the Parquet file ``path``,
    a row group every :data:`ROW_GROUP_BYTES` of images."""
    pa, pq = require_pyarrow()
    schema = _schema(pa)
    # PNG does not compress further; compress only the text columns.
    compression = {name: "SNAPPY" for name in COLUMNS if name not in ("fg", "alpha")}
    compression.update({f"{image}.{part}": "NONE" for image in ("fg", "alpha")
                        for part in ("bytes", "path")})
    # No dictionary encoding: each image is distinct, a dictionary would only cost memory.
    with pq.ParquetWriter(str(path), schema, compression=compression,
                          use_dictionary=False) as writer:
        rows, used = [], 0

        def flush():
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            rows.clear()

        for sample in samples:
            rows.append(sample_row(sample))
            used += len(sample.fg) + len(sample.alpha)
            if used >= ROW_GROUP_BYTES:
                flush()
                used = 0
        if rows:
            flush()
