"""A dataset card: ``README.md`` with the Hugging Face hub's YAML header and the facts of a
dataset (``ld-portrait dataset card ROOT``), with charts (:mod:`.card_pictures`).

The header has ``license`` (derived from the models the samples' meta records, see
:func:`licence_of_models`), ``task_categories``, ``tags``, ``size_categories`` and
``pretty_name``; for a folder holding an ``hf`` export (:mod:`.export_shards`), ``configs``
naming its Parquet files (one config per ``--limit`` subset). The body: what the dataset is,
a sample sheet (``card/samples.png``: samples over a transparency checker beside their mattes), the
counts, the licences of the models, the gate's reject reasons, the attribute distribution and
the refinement measures (from :func:`.stats.dataset_stats`), and how to cite the paper.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

__all__ = ["MODEL_LICENCES", "licence_of_models", "Licence", "size_category", "dataset_card",
           "write_dataset_card", "SHEET_PATH"]

#: Where the sample sheet goes, relative to the card's folder.
SHEET_PATH = "card/samples.png"

_FLUX_DEV = ("other", "flux-1-dev-non-commercial-license",
             "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md")
#: (pattern in the lower-cased models text, hub licence id, licence name, link), first match
#: per model mention wins; the more specific names come first.
MODEL_LICENCES = (
    (r"flux[._\- ]?1?[._\- ]?dev", *_FLUX_DEV),
    (r"flux[._\- ]?1?[._\- ]?schnell", "apache-2.0", "Apache 2.0",
     "https://huggingface.co/black-forest-labs/FLUX.1-schnell"),
    (r"sdxl|sd_xl|stable[-_ ]diffusion[-_ ]xl", "openrail++", "CreativeML Open RAIL++-M",
     "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md"),
    (r"sd[-_ ]?1[._]?5|v1[-_]5|stable[-_ ]diffusion[-_ ]v?1", "creativeml-openrail-m",
     "CreativeML Open RAIL-M",
     "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5"),
)

_CITATION = """@article{lu2025ldportrait,
  title  = {Efficient Portrait Matte Creation With Layer Diffusion and Connectivity Priors},
  author = {Lu, Zhiyuan and Lu, Hao and Huang, Hua},
  year   = {2025}
}"""


@dataclasses.dataclass
class Licence:
    """The header's licence and what it was derived from.

    ``hub_id`` is the hub's ``license`` value; ``name`` and ``link`` go with ``other``;
    ``models`` maps each recorded models text to its licence id (None: not recognised);
    ``note`` says why the header has what it has."""

    hub_id: str
    name: str | None
    link: str | None
    models: dict
    note: str


def _licences_in(text: str) -> list[tuple]:
    lowered = text.lower()
    return [entry for entry in MODEL_LICENCES if re.search(entry[0], lowered)]


def licence_of_models(models: dict) -> Licence:
    """The dataset's licence from ``models`` (the recorded models text -> sample count).

    A FLUX.1-dev-made sample makes the whole set non-commercial (``other`` with FLUX.1-dev's
    licence); otherwise one licence shared by every recognised model is the set's; several,
    or models not recognised, give ``other`` and a note to check the terms."""
    found = {text: _licences_in(text) for text in models}
    per_model = {text: sorted({entry[1] for entry in entries}) or None
                 for text, entries in found.items()}
    entries = {entry for matches in found.values() for entry in matches}
    unknown = [text for text, matches in found.items() if not matches]
    if any(entry[1:] == _FLUX_DEV for entry in entries):
        return Licence(*_FLUX_DEV, per_model,
                       "Samples made with FLUX.1-dev inherit its non-commercial licence.")
    if not models:
        return Licence("other", "unknown", None, per_model,
                       "The samples' meta records no models: state the licence by hand.")
    ids = {entry[1] for entry in entries}
    if len(ids) == 1 and not unknown:
        entry = next(iter(entries))
        return Licence(entry[1], None, None, per_model,
                       f"Every sample was made with models under {entry[2]} ({entry[3]}).")
    why = (f"models not recognised: {', '.join(unknown)}" if unknown
           else f"several licences: {', '.join(sorted(ids))}")
    return Licence("other", "mixed", None, per_model,
                   f"Check the terms by hand ({why}).")


def size_category(count: int) -> str:
    """The hub's ``size_categories`` value for ``count`` samples."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if count < bound:
            return name
    return "1M<n<10M"


def _yaml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _export_configs(folder: Path) -> list[tuple[str, str]]:
    """(config name, folder prefix) of the hf exports in ``folder``."""
    from .export_shards import SHARDS_NAME

    configs = []
    candidates = [(folder / SHARDS_NAME, "default", "")] + [
        (sub / SHARDS_NAME, sub.name, f"{sub.name}/") for sub in sorted(folder.glob("limit_*"))]
    for path, name, prefix in candidates:
        if path.is_file():
            try:
                layout = json.loads(path.read_text("utf-8")).get("layout")
            except (OSError, ValueError, AttributeError):
                continue
            if layout == "hf":
                configs.append((name, prefix))
    return configs


def _header(stats, licence: Licence, configs) -> list[str]:
    lines = ["---", f"license: {licence.hub_id}"]
    if licence.name:
        lines.append(f"license_name: {licence.name}")
    if licence.link:
        lines.append(f"license_link: {licence.link}")
    lines += ["task_categories:", "- image-segmentation", "tags:", "- image-matting",
              "- alpha-matting", "- portrait", "- synthetic", "- layer-diffusion",
              "size_categories:", f"- {size_category(stats.accepted)}",
              f"pretty_name: {_yaml_string('LD-Portrait matting dataset')}"]
    if configs:
        # The whole export when there is one, else the smallest subset.
        default = "default" if any(n == "default" for n, _ in configs) else configs[0][0]
        lines.append("configs:")
        for name, prefix in configs:
            lines += [f"- config_name: {name}", "  data_files:",
                      "  - split: train", f"    path: {prefix}data/train-*",
                      "  - split: validation", f"    path: {prefix}data/validation-*"]
            if name == default:
                lines.append("  default: true")
    lines.append("---")
    return lines


def _table(head: tuple, rows) -> list[str]:
    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


def dataset_card(root, *, export_folder=None, sheet: str | None = SHEET_PATH,
                 charts=()) -> str:
    """The card's Markdown for the dataset ``root``; ``export_folder`` (an export of it) adds
    the ``configs`` of its hf shards; ``sheet`` is the sample sheet's path to show (None: no
    picture); ``charts`` the paths of the charts (:mod:`.card_pictures`), shown by their
    section."""
    chart_of = {Path(path).stem: path for path in charts}

    def picture(stem: str, words: str) -> list[str]:
        return [f"![{words}]({chart_of[stem]})", ""] if stem in chart_of else []

    from .stats import dataset_stats

    stats = dataset_stats(root)
    licence = licence_of_models(stats.models)
    configs = _export_configs(Path(export_folder)) if export_folder is not None else []
    total = stats.accepted + stats.rejected
    lines = _header(stats, licence, configs)
    lines += ["", "# LD-Portrait matting dataset", "",
              "Portrait foregrounds with alpha mattes, generated with Layer Diffusion and "
              "refined with connectivity priors (ComfyUI-LD-Portrait). Each sample is a padded "
              "foreground colour `fg` (8-bit RGB PNG) and its alpha matte `alpha` (8- or 16-bit "
              "gray PNG), with the prompt, seed, attributes, models, refinement measures and "
              "the quality gate's verdict.", ""]
    if sheet:
        lines += [f"![Samples over a transparency checker, each beside its matte]({sheet})", ""]
    lines += ["## Counts", ""]
    lines += _table(("what", "samples"), [
        ("accepted (the dataset)", stats.accepted),
        ("rejected by the quality gate", stats.rejected),
        ("share rejected", f"{100.0 * stats.rejected / total:.1f}%" if total else "-")])
    if configs:
        lines += ["", "Loading: `datasets.load_dataset(\"parquet\", data_dir=...)` or, on the "
                  "hub, `load_dataset(REPO, \"" + configs[0][0] + "\")`; `fg` and `alpha` are "
                  "image columns."]
    lines += ["", "## Models and licence", "", licence.note, ""]
    lines += _table(("models (as recorded)", "samples", "licence"),
                    [(text, count, ", ".join(licence.models.get(text) or ["not recognised"]))
                     for text, count in sorted(stats.models.items(), key=lambda kv: -kv[1])]
                    or [("(none recorded)", stats.accepted, "-")])
    lines += ["", "## Quality gate: reject reasons", ""]
    lines += picture("gate_reasons", "Reject reasons")
    lines += (_table(("reason", "rejected samples"),
                     sorted(stats.reject_reasons.items(), key=lambda kv: (-kv[1], kv[0])))
              if stats.reject_reasons else ["No sample was rejected."])
    if stats.attributes:
        lines += ["", "## Attributes (from the prompt templates)", ""]
        lines += picture("attributes", "Attribute values")
        rows = []
        for key, info in stats.attributes.items():
            for value, counts in info["values"].items():
                rows.append((key, value, counts["accepted"], counts["rejected"]))
        lines += _table(("attribute", "value", "accepted", "rejected"), rows)
    if stats.refinement or chart_of:
        lines += ["", "## Refinement measures (accepted samples)", ""]
        lines += picture("foreground_fraction", "Foreground fraction")
        lines += picture("refinement_changed", "Changed fraction")
    if stats.refinement:
        lines += _table(("measure", "median", "mean", "p90", "max", "nonzero"), [
            (key, f"{s['median']:.4g}", f"{s['mean']:.4g}", f"{s['p90']:.4g}",
             f"{s['max']:.4g}", s["nonzero"]) for key, s in stats.refinement.items()])
    lines += ["", "## Citation", "", "```bibtex", _CITATION, "```", ""]
    return "\n".join(lines)


def write_dataset_card(root, output_folder=None, *, pictures: bool = True) -> list[Path]:
    """Write ``README.md`` (and the sample sheet) into ``output_folder`` (default ``root``;
    an export folder of ``root`` gets its hf ``configs``); returns the files written."""
    from .imagefiles import write_bytes_atomic, write_png_atomic
    from .layout import DatasetError
    from .sheet import dataset_sheet

    root = Path(root)
    folder = Path(output_folder) if output_folder is not None else root
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder.")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    sheet = None
    charts = []
    if pictures:
        from .card_pictures import card_charts
        from .stats import dataset_stats

        stats = dataset_stats(root)
        (folder / SHEET_PATH).parent.mkdir(parents=True, exist_ok=True)
        count = min(12, stats.accepted)
        if count:
            picture = dataset_sheet(root, count=count, cell=192, columns=4, backgrounds=("checker",))
            written.append(write_png_atomic(folder / SHEET_PATH, picture))
            sheet = SHEET_PATH
        for name, chart in card_charts(root, stats).items():
            relative = f"{Path(SHEET_PATH).parent.as_posix()}/{name}"
            written.append(write_png_atomic(folder / relative, chart))
            charts.append(relative)
    text = dataset_card(root, export_folder=folder if folder != root else None, sheet=sheet,
                        charts=charts)
    written.insert(0, write_bytes_atomic(folder / "README.md", text.encode("utf-8")))
    return written
