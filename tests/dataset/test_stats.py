"""dataset_stats, `ld-portrait dataset stats|sheet`, and the Figure-5 style dataset sheet."""
import io
import json

import pytest

from comfyui_ld_portrait.cli import app as cli
from comfyui_ld_portrait.dataset import DatasetError, DatasetWriter, dataset_stats
from helpers.dataset_samples import H, W, stats_images


def test_counts_sizes_and_reject_reasons(root):
    stats = dataset_stats(root)
    assert (stats.accepted, stats.rejected) == (7, 3)  # broken.json counts as a meta file
    assert stats.unreadable_meta == 1 and stats.incomplete == 1
    assert stats.manifest_lines == 6
    assert stats.sizes == {f"{W}x{H}": 5, "64x96": 1}
    assert stats.reject_reasons == {"multiple_people": 2, "cut_off_top": 1, "(no verdict)": 1}


def test_attribute_histograms_and_coverage(root):
    stats = dataset_stats(root)
    hair = stats.attributes["hair"]
    assert hair["values"] == {"red": {"accepted": 4, "rejected": 1},
                              "black": {"accepted": 1, "rejected": 1},
                              "blonde": {"accepted": 1, "rejected": 0},
                              "grey": {"accepted": 0, "rejected": 1}}
    assert list(hair["values"])[:3] == ["red", "black", "blonde"]  # most common first
    assert hair["samples"] == 6 and hair["distinct"] == 3 and hair["only_rejected"] == ["grey"]
    age = stats.attributes["age"]
    assert age["values"]["young"] == {"accepted": 3, "rejected": 2}
    assert age["values"]["(none)"] == {"accepted": 1, "rejected": 0}  # null = empty option
    combos = stats.combinations
    # Accepted combinations: red/young x2, red/senior, black/young, blonde/none, red (big).
    assert combos["samples"] == 6 and combos["distinct"] == 5 and combos["repeated"] == 1
    assert combos["most_common"] == 2
    assert combos["distinct_prompts"] == 3 and combos["prompt_samples"] == 5
    assert stats.models == {"sdxl": 5}


def test_refinement_summaries(root):
    refinement = dataset_stats(root).refinement
    changed = refinement["changed_fraction"]
    assert changed["count"] == 5
    assert changed["median"] == pytest.approx(0.2)
    assert changed["mean"] == pytest.approx(0.2)
    assert changed["max"] == pytest.approx(0.4) and changed["nonzero"] == 4
    assert "height" not in refinement and list(refinement)[0] == "changed_fraction"
    assert refinement["pinholes_filled"]["nonzero"] == 2  # samples 1 and 3


def test_stats_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        dataset_stats(tmp_path / "nothing")


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_stats_command_text_and_json(root):
    code, out, err = _run(["dataset", "stats", str(root), "--top", "2"])
    assert code == 0, err
    assert "7 accepted, 3 rejected" in out and "1 incomplete" in out
    assert "multiple_people: 2" in out and "red: 4  (20% rejected)" in out
    assert "never accepted: grey" in out and "... 1 more value(s)" in out
    assert "changed_fraction" in out and "unreadable meta" in out
    code, out, _ = _run(["dataset", "stats", str(root), "--json"])
    assert code == 0
    data = json.loads(out)
    assert data["attributes"]["hair"]["values"]["red"] == {"accepted": 4, "rejected": 1}
    code, _, err = _run(["dataset", "stats", str(root / "missing")])
    assert code == 1 and "no such dataset folder" in err


def test_stats_of_a_folder_that_is_not_a_dataset_is_an_error_and_exit_1(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(DatasetError, match=r"is not a dataset \(no meta/ or manifest.jsonl"):
        dataset_stats(tmp_path / "photos")
    for command in ("stats", "verify"):
        code, out, err = _run(["dataset", command, str(tmp_path / "photos")])
        assert code == 1 and "is not a dataset" in err, (command, out, err)
        assert "consistent" not in out


def test_prompt_line_says_when_no_accepted_sample_has_a_prompt(tmp_path):
    writer = DatasetWriter(tmp_path, durable=False)
    for number in range(8):
        fg, alpha = stats_images(number)
        writer.write_sample(f"s{number}", fg, alpha, meta={"source_file": f"{number}.png"})
    stats = dataset_stats(tmp_path)
    assert stats.accepted == 8
    text = stats.to_text()
    assert "no accepted sample records a prompt" in text
    assert "0 distinct among 0" not in text


def test_prompt_line_counts_prompts_among_samples_that_have_one(root):
    text = dataset_stats(root).to_text()
    # 5 accepted samples with a prompt ("prompt red" x3, "prompt black", "prompt blonde") of 7
    # accepted (the 96x64 one has none; "broken" is unreadable).
    assert "prompts: 3 distinct among 5 accepted sample(s) with a prompt (of 7 accepted)" in text
