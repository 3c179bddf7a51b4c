"""cli/common.py: the folder-job runner shared by refine, demo, key, video-matte and dataset
export (JobProgress, run_job, print_summary, run_exit_code)."""
from __future__ import annotations

import dataclasses
import io
import json

import pytest

from comfyui_ld_portrait.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
                                            JobErrors, JobProgress, print_summary,
                                            run_exit_code, run_job)


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_makes_its_bar_at_the_first_event_and_names_failures():
    stderr = _Stream(tty=False)
    progress = JobProgress(stderr, "export", failed_word="skipped")
    assert progress.bar is None
    progress.finish()  # no event yet: nothing to end, nothing printed
    assert stderr.getvalue() == ""
    progress(1, 3, "accepted", "a.png")
    progress(2, 3, "failed", "b.png", "not RGBA")
    assert progress.bar.total == 3 and progress.bar.counts == {"accepted": 1, "failed": 1}
    assert stderr.getvalue() == "skipped b.png: not RGBA\n"
    progress.finish()
    assert stderr.getvalue().splitlines()[-1].startswith("export: 2/3 file(s) in ")


def test_failure_line_starts_on_its_own_line_under_a_drawn_bar():
    stderr = _Stream(tty=True)
    progress = JobProgress(stderr, "key", total=2)
    progress(1, 2, "failed", "x.png", "unreadable")
    text = stderr.getvalue()
    assert text.startswith("\rkey [") and text.endswith("\nfailed x.png: unreadable\n")


@pytest.mark.parametrize("raised, code, message", [
    (ValueError("folders overlap"), EXIT_USAGE, "ld-portrait: error: folders overlap\n"),
    (OSError(28, "No space left on device"), EXIT_FAILED,
     "ld-portrait: error: disk: No space left on device\n"),
])
def test_run_job_turns_errors_into_exit_codes_and_ends_the_bar(raised, code, message):
    stderr = _Stream(tty=False)
    progress = JobProgress(stderr, "refine", total=4)

    def work(should_stop):
        progress(1, 4, "accepted", "a.png")
        raise raised

    errors = JobErrors(usage=(ValueError,), fatal=(OSError,),
                       describe=lambda error: f"disk: {error.strerror}")
    result, exit_code = run_job(work, progress, stderr, errors, final_line=False)
    assert (result, exit_code) == (None, code)
    assert stderr.getvalue() == message  # the bar printed no count line of its own


def test_run_job_returns_the_result_and_lets_other_errors_through():
    stderr = _Stream(tty=False)
    result, code = run_job(lambda should_stop: ("done", should_stop()), JobProgress(stderr, "x"),
                           stderr)
    assert result == ("done", False) and code is None
    with pytest.raises(KeyError):
        run_job(lambda should_stop: {}["missing"], JobProgress(stderr, "x"), stderr)


@dataclasses.dataclass
class _Run:
    interrupted: bool = False
    fatal_error: str | None = None

    def to_json(self):
        return {"name": "café", "interrupted": self.interrupted}

    def to_text(self):
        return "1 accepted"


def _printed(as_json: bool, **options) -> str:
    stdout = io.StringIO()
    print_summary(stdout, _Run(), as_json, **options)
    return stdout.getvalue()


def test_summary_and_exit_code():
    assert _printed(False) == "1 accepted\n"
    assert "\\u00e9" in _printed(True) and "café" in _printed(True, ensure_ascii=False)
    assert json.loads(_printed(True)) == {"name": "café", "interrupted": False}
    stderr = io.StringIO()
    assert run_exit_code(_Run(), stderr) == EXIT_OK
    assert run_exit_code(_Run(), stderr, failed=True) == EXIT_FAILED
    assert run_exit_code(_Run(interrupted=True), stderr) == EXIT_INTERRUPTED
    assert stderr.getvalue() == ""
    assert run_exit_code(_Run(interrupted=True, fatal_error="disk full"), stderr) == EXIT_FAILED
    assert stderr.getvalue() == "ld-portrait: error: disk full\n"


def test_field_type_takes_kind_and_range_from_the_settings_field():
    import argparse

    from comfyui_ld_portrait.cli.common import field_type
    from comfyui_ld_portrait.matting.keying import KeyParams
    from comfyui_ld_portrait.matting.video import VideoMatteParams

    clip = field_type(KeyParams, "clip_black")
    assert clip("0.25") == 0.25
    window = field_type(VideoMatteParams, "window")
    assert window("5") == 5 and isinstance(window("5"), int)
    for parse, text in ((clip, "1.5"), (clip, "x"), (window, "40"), (window, "2.5")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_setting_options_take_default_range_and_help_from_the_field():
    import argparse
    import dataclasses

    from comfyui_ld_portrait.cli.common import add_setting_option
    from comfyui_ld_portrait.matting.params import KeyParams, VideoMatteParams

    parser = argparse.ArgumentParser(prog="t")
    add_setting_option(parser, KeyParams, "spill_strength", "--spill")
    add_setting_option(parser, VideoMatteParams, "band", metavar="PX")
    args = parser.parse_args([])
    assert args.spill == KeyParams().spill_strength and args.band == VideoMatteParams().band
    assert parser.parse_args(["--band", "7"]).band == 7
    text = " ".join(parser.format_help().split())
    spec = next(f for f in dataclasses.fields(VideoMatteParams) if f.name == "band")
    assert " ".join(spec.metadata["doc"].split()) in text  # its "2%" reached argparse intact
    assert "(0..512; default 0)" in text and "--band PX" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--spill", "1.5"])


def test_key_and_video_matte_options_are_the_fields():
    from helpers.cli_runs import run_cli

    code, out, _ = run_cli(["key", "--help"])
    assert code == 0 and "(0.0..1.0; default 0.05)" in " ".join(out.split())
    code, _, err = run_cli(["video-matte", "f", "m", "o", "--window", "40"])
    assert code == 2 and "expected 1..31, got 40" in err
