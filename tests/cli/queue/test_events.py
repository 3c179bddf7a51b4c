"""The event-driven queue: websocket frames, ComfyUI's messages, and runs against fake servers
whose websocket works, is refused, goes quiet, drops, or misses events. Every run must
complete every job exactly once (executions counted on the servers)."""
from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time

import pytest

from comfyui_ld_portrait.cli.queue import events as ev
from comfyui_ld_portrait.cli.queue import websocket as ws
from helpers.fake_comfy_server import FakeComfyServer
from helpers.queue_runs import GRAPH, cli, make_runner, run_bounded, run_queue

#: Waiting for a fake server's state in a test; a condition still false after this is a hang.
WAIT_S = 30.0


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def executions(*fakes) -> collections.Counter:
    return collections.Counter(index for fake in fakes for index in fake.executed)


def assert_each_once(summary, fakes, indices) -> None:
    assert summary.done == len(indices), summary.to_text()
    assert executions(*fakes) == collections.Counter(indices)  # none lost, none run twice
    assert sum(server["done"] for server in summary.servers) == len(indices)


# ---- frames ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("mask", [False, True])
def test_frames_round_trip(size, mask):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = ws.encode_frame(ws.OP_BINARY, payload, mask=mask)
    buffer = bytearray(frame + b"next")
    assert ws.parse_frame(bytearray(frame[:-1])) is None  # incomplete: wait for more
    fin, opcode, parsed, length = ws.parse_frame(buffer)
    assert (fin, opcode, parsed, length) == (True, ws.OP_BINARY, payload, len(frame))


def test_a_huge_frame_is_refused():
    frame = ws.encode_frame(ws.OP_TEXT, b"x" * 2000, mask=False)
    with pytest.raises(ws.WebSocketError, match="more than"):
        ws.parse_frame(bytearray(frame), max_bytes=1000)


def test_client_answers_pings_joins_fragments_and_survives_timeouts():
    ours, theirs = socket.socketpair()
    client = ws.WebSocket(ours)
    with pytest.raises(TimeoutError):
        client.recv(0.01)
    message = ws.encode_frame(ws.OP_TEXT, b'{"type": "status"}', mask=False)
    theirs.sendall(message[:3])  # half a frame, then a timeout: nothing may be lost
    with pytest.raises(TimeoutError):
        client.recv(0.01)
    theirs.sendall(message[3:])
    assert client.recv(1.0) == (ws.OP_TEXT, b'{"type": "status"}')
    ping = ws.encode_frame(ws.OP_PING, b"hi", mask=False)
    first = bytearray(ws.encode_frame(ws.OP_TEXT, b"ab", mask=False))
    first[0] &= 0x7F  # not final
    last = ws.encode_frame(ws.OP_CONTINUATION, b"cd", mask=False)
    theirs.sendall(ping + bytes(first) + last)
    assert client.recv(1.0) == (ws.OP_TEXT, b"abcd")
    theirs.settimeout(1.0)
    fin, opcode, payload, _ = ws.parse_frame(bytearray(theirs.recv(100)))
    assert (opcode, payload) == (ws.OP_PONG, b"hi")
    theirs.sendall(ws.encode_frame(ws.OP_CLOSE, b"\x03\xe8", mask=False))
    with pytest.raises(ws.WebSocketError, match="closed"):
        client.recv(1.0)
    client.close()
    theirs.close()


def test_connect_refused_and_no_upgrade(fake):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        ws.connect(f"http://127.0.0.1:{free}", "abc", 2.0)
    fake.ws_refuse = True
    with pytest.raises(ws.WebSocketError, match="no websocket upgrade.*404"):
        ws.connect(fake.url, "abc", 2.0)


# ---- ComfyUI's messages ---------------------------------------------------------------------

def test_messages_mark_prompts_started_and_ended():
    events = ev.ServerEvents()
    events.on_message({"type": "execution_start", "data": {"prompt_id": "a"}})
    events.on_message({"type": "executing", "data": {"node": "9", "prompt_id": "b"}})
    assert not events.wake.is_set()
    events.on_message({"type": "execution_success", "data": {"prompt_id": "b"}})
    events.on_message({"type": "executing", "data": {"node": None, "prompt_id": "c"}})
    events.on_message({"type": "execution_error", "data": {"prompt_id": "d"}})
    events.on_message({"type": "execution_interrupted", "data": {"prompt_id": "e"}})
    for junk in ({"type": "executing", "data": None}, {"type": "progress", "data": {}},
                 {"data": {"prompt_id": "f"}}, {"type": "executing", "data": {"node": None}}):
        events.on_message(junk)
    assert events.wake.is_set()
    ended, started = events.take({"a", "b", "c", "d"})
    assert sorted(ended) == ["b", "c", "d"] and started == ["a"]
    # "e" is not held yet (its POST answer may still be on the way): kept for later.
    assert events.take({"e"}) == (["e"], [])
    assert events.take({"b", "e"}) == ([], [])  # each end is handed out once


def test_an_idle_server_asks_for_a_reconcile():
    events = ev.ServerEvents()
    events.on_message({"type": "status", "data": {"status": {"exec_info":
                                                             {"queue_remaining": 2}}}})
    assert not events.take_reconcile()
    events.on_message({"type": "status", "data": {"status": {"exec_info":
                                                             {"queue_remaining": 0}}}})
    assert events.take_reconcile() and not events.take_reconcile()
    events.set_live(True)  # a (re)connection: events may have been missed meanwhile
    assert events.take_reconcile() and events.connections == 1


# ---- runs ---------------------------------------------------------------------------------------

def test_events_alone_settle_jobs(fake, fake2, root):
    """With a poll interval far beyond the run's limit, only the events can settle the jobs:
    the run ends, every job done once."""
    indices = list(range(10))
    summary, log = run_queue([fake, fake2], indices, root, poll_interval=1000.0)
    assert_each_once(summary, [fake, fake2], indices)
    assert fake.ws_connections == 1 and fake2.ws_connections == 1
    assert "no websocket events" not in log


def test_refused_websockets_fall_back_to_polling(fake, fake2, root):
    fake.ws_refuse = fake2.ws_refuse = True
    indices = list(range(8))
    summary, log = run_queue([fake, fake2], indices, root)
    assert_each_once(summary, [fake, fake2], indices)
    assert summary.exit_code == 0
    assert log.count("no websocket events") == 2  # one note per server, not one per retry
    assert "404" in log and "polling every 0.02 s" in log


def test_missed_events_are_reconciled_from_history(fake, root):
    """No message at all for some prompts (as while a connection was down): their results are
    read from /history once the server reports an idle queue, none lost or run twice."""
    fake.ws_silent_for = {1, 3, 4}
    indices = list(range(6))
    summary, _ = run_queue([fake], indices, root, poll_interval=1000.0)
    assert_each_once(summary, [fake], indices)


def test_event_and_poll_seeing_the_same_end_count_it_once(fake, fake2, root):
    """Polling all the time (a websocket counted as quiet at once) while events arrive: both
    paths see every end; each job is settled once, never retried or resubmitted."""
    indices = list(range(12))
    summary, _ = run_queue([fake, fake2], indices, root, events_quiet=1e-6)
    assert_each_once(summary, [fake, fake2], indices)
    assert summary.retries == 0
    assert len(fake.received) + len(fake2.received) == len(indices)


def test_quiet_websocket_polls_then_reconnects(fake, root):
    """A connection that says nothing (no answer to pings either): the worker polls meanwhile,
    and the listener drops it and connects again."""
    fake.ws_mute = True
    fake.paused = True
    indices = list(range(4))
    runner = make_runner([fake], indices, root, events_quiet=0.1, poll_interval=0.05)
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_bounded(runner)))
    thread.start()
    wait_for(lambda: fake.ws_connections >= 2, "a second websocket connection")
    polls_while_quiet = fake.requests.count(("GET", "/queue"))
    fake.ws_mute = False
    fake.paused = False
    thread.join(WAIT_S * 2)
    assert_each_once(result["summary"], [fake], indices)
    assert polls_while_quiet >= 2


def test_dropped_websocket_reconnects_and_reconciles(fake, root):
    fake.paused = True
    indices = list(range(4))
    runner = make_runner([fake], indices, root, poll_interval=1000.0)
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_bounded(runner)))
    thread.start()
    wait_for(lambda: fake.ws_connections >= 1 and len(fake.received) >= 2, "jobs queued")
    fake.ws_silent_for = set(indices)  # what ends before the reconnection is never announced
    fake.close_websockets()
    fake.paused = False
    wait_for(lambda: len(fake.executed) >= 2, "two executions")
    fake.ws_silent_for = set()
    thread.join(WAIT_S * 2)
    assert_each_once(result["summary"], [fake], indices)
    assert fake.ws_connections >= 2


def test_no_websocket_option_polls_only(fake, root):
    indices = list(range(4))
    summary, _ = run_queue([fake], indices, root, events=False)
    assert_each_once(summary, [fake], indices)
    assert fake.ws_connections == 0


def test_end_to_end_with_short_jobs(output_dir, root):
    """Four fake servers, 0.01 s jobs, through the command line: everything done once."""
    fakes = [FakeComfyServer(output_dir, exec_delay=0.01).start() for _ in range(4)]
    try:
        graph = output_dir.parent / "graph.json"
        graph.write_text(json.dumps(GRAPH), encoding="utf-8")
        argv = [str(graph), "--count", "40", "--dataset", str(root)]
        for fake in fakes:
            argv += ["--server", fake.url]
        code, out, err = cli(argv)
    finally:
        for fake in fakes:
            fake.stop()
    assert code == 0, out + err
    assert re.search(r"^  done +40$", out, re.M), out
    assert executions(*fakes) == collections.Counter(range(40))
    assert all(fake.ws_connections == 1 for fake in fakes)
