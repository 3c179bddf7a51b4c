"""pipeline/folder.py run_file_loop: the loop refine_folder and key_folder share (skips, the
limit, Ctrl-C, fatal errors, unexpected errors, progress events)."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

from comfyui_ld_portrait.dataset import DatasetError
from comfyui_ld_portrait.pipeline.folder import (FileLoop, assign_ids, output_message,
                                                 run_file_loop)
from comfyui_ld_portrait.pipeline.summary import RunSummary

FILES = [Path(f"/in/{name}.png") for name in ("a", "b", "c", "d")]


def _loop(process, *, done=(), **settings):
    summary = RunSummary(input_dir="/in", output_dir="/out", found=len(FILES))
    events = []

    def counted(path, sample_id):
        outcome = process(path, sample_id)
        summary.processed += 1
        return outcome, ""

    loop = FileLoop(list(FILES), summary, is_done=lambda path, sample_id: path.stem in done,
                    process=counted, progress=events.append, **settings)
    return loop, summary, events


def test_skips_complete_files_and_stops_at_the_limit():
    loop, summary, events = _loop(lambda path, sample_id: "accepted", done={"b"}, limit=2)
    run_file_loop(loop)
    assert [(e.file, e.outcome) for e in events] == [("a.png", "accepted"), ("b.png", "skipped"),
                                                      ("c.png", "accepted")]
    assert [e.sample_id for e in events] == assign_ids(FILES)[:3]
    assert (summary.processed, summary.skipped_complete, summary.limit_reached) == (2, 1, True)
    assert not summary.completed


def test_stop_request_and_second_ctrl_c_end_the_run_cleanly():
    asked = []
    loop, summary, events = _loop(lambda path, sample_id: "accepted",
                                  should_stop=lambda: len(asked.append(1) or asked) > 2)
    run_file_loop(loop)
    assert len(events) == 2 and summary.interrupted

    def interrupt_at_c(path, sample_id):
        if path.stem == "c":
            raise KeyboardInterrupt
        return "accepted"

    loop, summary, events = _loop(interrupt_at_c)
    run_file_loop(loop)
    assert [e.file for e in events] == ["a.png", "b.png"] and summary.interrupted


def test_fatal_error_ends_the_run_with_its_message():
    def disk_full_at_b(path, sample_id):
        if path.stem == "b":
            raise OSError(28, "No space left on device")
        return "accepted"

    loop, summary, events = _loop(disk_full_at_b, fatal_errors=(DatasetError, OSError),
                                  fatal_message=functools.partial(output_message, Path("/out")))
    run_file_loop(loop)
    assert [e.file for e in events] == ["a.png"]
    assert summary.fatal_error.startswith("cannot write to /out: No space left on device")
    assert "(disk full?)" in summary.fatal_error


@pytest.mark.parametrize("record", [True, False])
def test_unexpected_error_is_that_files_failure_or_propagates(record):
    def broken_at_a(path, sample_id):
        if path.stem == "a":
            raise ZeroDivisionError("bug")
        return "accepted"

    loop, summary, events = _loop(broken_at_a, record_unexpected=record)
    if not record:
        with pytest.raises(ZeroDivisionError):
            run_file_loop(loop)
        return
    run_file_loop(loop)
    assert [(e.file, e.outcome) for e in events][:2] == [("a.png", "failed"), ("b.png", "accepted")]
    assert summary.failed[0].file == "a.png"
    assert summary.failed[0].reason == "unexpected error (ZeroDivisionError: bug)"
    assert summary.completed and summary.processed == 3
