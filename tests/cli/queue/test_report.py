"""cli/queue/report.py: the summary text and JSON, and the progress line between log lines."""
from __future__ import annotations

import io
import json

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.cli.queue.report import Console


def _summary(**overrides) -> sq.QueueSummary:
    values = dict(requested=10, skipped=1, done=3, rejected=1, failed=2, unfinished=3,
                  retries=4, wall_s=3725.0, interrupted=False, stop_reason="", dataset_root="/d",
                  servers=[dict(url="http://a:1", enabled=False, disabled_reason="stuck",
                                submitted=5, done=3, rejected=1, failed_attempts=2,
                                validation_errors=0, timeouts=1, connection_errors=0)],
                  failures=[("000001", "boom"), ("000002", "boom")],
                  unfinished_items=[("000005", "not started (stopped)")],
                  not_started=sq.NotStarted(2, 8, "unfinished", "not started (stopped)"))
    values.update(overrides)
    return sq.QueueSummary(**values)


def test_summary_text_groups_reasons_and_shows_indices_not_reached():
    text = _summary().to_text()
    assert text.splitlines()[0] == ("ld-portrait queue: 10 sample(s) requested, wall time "
                                    "1:02:05")
    assert "    2 x boom\n        ids: 000001, 000002" in text
    assert "  unfinished (3):" in text and "    1 x not started (stopped)\n        ids: 000005" \
        in text
    assert "    2 x not started (stopped)\n        indices: 8 and later" in text
    assert "http://a:1: 5 submitted, 3 done, 1 rejected, 2 failed attempt(s), 1 timeout(s)" \
        "  [not used: stuck]" in text
    assert "skipped          1   (already complete in /d)" in text


def test_exit_codes_and_json():
    assert _summary().exit_code == 1
    assert _summary(failed=0, unfinished=0, failures=[], unfinished_items=[],
                    not_started=sq.NotStarted()).exit_code == 0
    assert _summary(interrupted=True).exit_code == 130
    data = json.loads(json.dumps(_summary().to_json()))
    assert data["failures"] == [{"id": "000001", "reason": "boom"},
                                {"id": "000002", "reason": "boom"}]
    assert data["not_started"] == {"count": 2, "first_index": 8, "outcome": "unfinished",
                                   "reason": "not started (stopped)"}
    assert data["exit_code"] == 1


def test_console_keeps_the_bar_below_log_lines_on_a_terminal():
    stream = io.StringIO()
    console = Console(stream, enabled=True, status_every=0)
    console.start(4)
    console.settled(1, "done")
    console.progress("1 in flight", force=True)
    console.log("warning: something")
    text = stream.getvalue()
    bar = "queue [######------------------] 1/4"
    assert text.count(bar) == 2  # drawn, then redrawn after the log line
    assert "| 1 in flight" in text
    assert text.index("warning: something") > text.index(bar)
    assert text.endswith("| 1 in flight")


def test_console_without_a_terminal_prints_plain_status_lines_only_when_asked():
    quiet = io.StringIO()
    console = Console(quiet, enabled=False, status_every=0)
    console.start(2)
    console.progress("0 in flight", force=True)
    console.log("note: hello")
    assert quiet.getvalue() == "note: hello\n"
    periodic = io.StringIO()
    console = Console(periodic, enabled=False, status_every=5.0)
    console._last_status -= 10.0  # the last status line was printed 10 s ago
    console.start(2)
    console.settled(2, "done")
    console.progress("0 in flight")
    assert periodic.getvalue().startswith("queue [####") and "2/2" in periodic.getvalue()
    assert "\r" not in periodic.getvalue()
