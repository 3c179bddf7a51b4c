"""cli/queue/client.py: HTTP with a total deadline, and reading ComfyUI's answers."""
from __future__ import annotations

import pytest

from comfyui_ld_portrait.cli import queue as sq


def test_server_urls_are_normalised_or_refused():
    assert sq.normalize_server_url("127.0.0.1:8188/") == "http://127.0.0.1:8188"
    assert sq.normalize_server_url("https://h/comfy/") == "https://h/comfy"
    for bad, message in (("ftp://h", "only http"), ("", "empty"), ("http://h:99999", "port"),
                         ("http://h:8188/?x=1", "leave out")):
        with pytest.raises(ValueError, match=message):
            sq.normalize_server_url(bad)


def test_history_entries_are_read():
    ok, reason = sq.parse_history_entry({"status": {"status_str": "error", "messages": [
        ["execution_error", {"node_id": "6", "node_type": "KSampler",
                             "exception_type": "torch.OutOfMemoryError",
                             "exception_message": "CUDA out of memory"}]]}})
    assert not ok and reason == ("execution error in node 6 (KSampler): torch.OutOfMemoryError: "
                                 "CUDA out of memory")
    assert sq.parse_history_entry({"outputs": {}}) == (True, "")  # old hosts: no status
    ok, reason = sq.parse_history_entry({"status": {"status_str": "error", "messages": [
        ["execution_error", {"node_id": "6", "node_type": "KSampler",
                             "exception_type": "RuntimeError", "exception_message": None}]]}})
    assert not ok and reason == "execution error in node 6 (KSampler): RuntimeError:"
    ok, reason = sq.parse_history_entry({"status": {"status_str": "error", "messages": [
        ["execution_interrupted", {}]]}})
    assert not ok and "interrupted" in reason


def test_validation_errors_become_one_line():
    body = {"error": {"type": "prompt_outputs_failed_validation",
                      "message": "Prompt outputs failed validation", "details": ""},
            "node_errors": {"10": {"class_type": "B", "errors": [{"message": "m2"}]},
                            "9": {"class_type": "A", "errors": [
                                {"message": "Value not in list", "details": "x: 'a' not in []"}]}}}
    text = sq.format_validation_error(body)
    assert text == ("Prompt outputs failed validation; node 9 (A): Value not in list: x: 'a' not "
                    "in []; node 10 (B): m2")  # numeric node order
    assert sq.format_validation_error(b"not json at all") == "not json at all"
    assert sq.format_validation_error(b"") == "(empty answer)"


def test_a_normal_answer_is_read(fake):
    queue = sq.HttpClient(fake.url, timeout=5.0).get_json("/queue")
    assert queue == {"queue_running": [], "queue_pending": []}


def test_a_server_that_answers_one_byte_at_a_time_hits_the_total_deadline(fake):
    # Each byte comes well within any socket timeout, so only a deadline on the whole
    # exchange ends this; without it the ~150-byte answer would arrive complete (~7 s).
    fake.drip_for["/queue"] = 0.05
    client = sq.HttpClient(fake.url, timeout=0.5)
    with pytest.raises(sq.ServerUnreachable, match="no complete answer within 0.5 s"):
        client.get_json("/queue")
    assert fake.requests == [("GET", "/queue")]


def test_html_instead_of_json_is_named(fake):
    fake.html_for.add("/queue")
    with pytest.raises(sq.ServerUnreachable,
                       match="GET /queue: the server answered HTML, not JSON: is this a "
                             "ComfyUI server\\?"):
        sq.HttpClient(fake.url, timeout=5.0).get_json("/queue")


def test_error_status_and_oversized_answers_are_refused(fake):
    fake.status_for["/queue"] = 503
    # The status line's reason phrase and the body's start say what the server answered.
    with pytest.raises(sq.ServerUnreachable,
                       match="GET /queue answered HTTP 503 Service Unavailable: {\"error\""):
        sq.HttpClient(fake.url, timeout=5.0).get_json("/queue")
    with pytest.raises(sq.ServerUnreachable, match="answered more than"):
        sq.HttpClient(fake.url, timeout=5.0, max_answer_bytes=64).get_json("/object_info")


def test_a_closed_port_is_reported_as_refused(fake):
    url = fake.url
    fake.stop()
    with pytest.raises(sq.ServerUnreachable, match="connection refused"):
        sq.HttpClient(url, timeout=5.0).request("GET", "/queue")


def test_one_request_can_have_a_shorter_deadline(fake):
    # The queue cuts a submission's deadline to what is left of the sample's budget.
    fake.drip_for["/queue"] = 0.05
    client = sq.HttpClient(fake.url, timeout=30.0)
    # (a cut deadline is shown rounded)
    with pytest.raises(sq.ServerUnreachable, match="no complete answer within 0.33 s"):
        client.request("GET", "/queue", timeout=0.3333)
    assert client.timeout == 30.0


def test_answers_describe_themselves():
    assert sq.Answer(500, b"boom\n  at line 3", "text/plain", "Internal Server Error"
                     ).describe() == "HTTP 500 Internal Server Error: boom at line 3"
    assert sq.Answer(502, b"", "text/plain", "Bad Gateway").describe() == \
        "HTTP 502 Bad Gateway (empty body)"
    assert sq.Answer(500, b"<html><body>oops</body></html>", "text/html", "").describe() == \
        "HTTP 500: an HTML page; is this a ComfyUI server?"
    assert sq.Answer(500, b"x" * 500, "text/plain", "Internal Server Error").describe(20) == \
        "HTTP 500 Internal Server Error: " + "x" * 17 + "..."
