"""A fake ComfyUI HTTP server on 127.0.0.1 for testing ``ld-portrait queue``.

It speaks the parts of ComfyUI's API the queue uses, with ComfyUI's answer shapes:

* ``POST /prompt``  validates node types against its ``/object_info`` (HTTP 400
  ``invalid_prompt`` for an unknown type, like the host), answers configured validation errors
  with HTTP 400 ``{"error", "node_errors"}``, otherwise queues the graph and answers
  ``{"prompt_id", "number", "node_errors": {}}`` (using the client's ``prompt_id`` if sent);
* ``GET /queue``  ``{"queue_running": [[number, id, prompt, extra, outputs]], "queue_pending"}``;
* ``GET /history/<id>``  ``{}`` until done, then ``{id: {"prompt", "outputs", "status"}}``
  with ``status_str`` ``success`` or ``error`` and an ``execution_error`` message;
* ``POST /queue {"delete": [ids]}``  removes waiting prompts;
* ``GET /object_info``  a minimal definition per known node type;
* ``GET /ws?clientId=ID``  a websocket (RFC 6455, the queue's own frame codec) with ComfyUI's
  messages: ``status`` (``queue_remaining``) to every client whenever the queue changes, and
  to the client id that queued a prompt ``execution_start``, ``executing`` (node "9"), then
  ``execution_success`` / ``execution_error`` *before* the history entry is written and
  ``executing`` with ``node: null`` after it, as ComfyUI orders them.

One executor thread runs the queue in order, like ComfyUI. "Executing" a graph waits
``exec_delay`` seconds and then writes a complete 4x4 sample with
:class:`~comfyui_ld_portrait.dataset.DatasetWriter` to ``output_dir/<dataset_name>`` under id
``index_id(sample_index)`` taken from the graph's ``LDPSaveDataset`` node, so resume can be
tested against real files.

Knobs (set attributes before or during a run): ``fail_times`` (sample index -> how many
executions fail), ``validation_errors`` (sample index -> (node id, message, details)),
``reject_indices`` (written under rejected/), ``no_write_indices`` (success, nothing written),
``delay_for`` (sample index -> execution time), ``disconnect_on`` (1-based request numbers,
counted over the object's life, answered by closing the socket without a response).
Misbehaviours: ``status_for`` (path prefix -> HTTP status answered instead, with a JSON error
body), ``html_for`` (path prefixes answered 200 with an HTML page, like a proxy's login page),
``drip_for`` (path prefix -> seconds between bytes: the whole answer, status line included,
trickles out one byte at a time), ``paused`` (queued prompts never start).
:meth:`stop` loses the queue and history like a real restart; :meth:`restart` listens again
on the same port. Websocket knobs: ``ws_refuse`` (``/ws`` answers HTTP 404, as behind a
proxy that does not pass websockets), ``ws_mute`` (connections open but nothing is sent, pongs
included: a quiet websocket), ``ws_silent_for`` (sample indices whose prompt messages are not sent:
missed events); :meth:`close_websockets` drops every open connection. Recorded: ``received`` (every graph posted, in order), ``requests``,
``executed`` (sample indices that succeeded), ``deleted``, ``max_outstanding`` (most prompts
queued or running at once), ``spans`` ((sample index, start, end) of every execution in
``time.monotonic()`` seconds), ``ws_connections`` (websocket connections accepted).
"""
from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from comfyui_ld_portrait.cli.queue.websocket import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
                                                      WebSocketError, accept_key, encode_frame,
                                                      parse_frame)

DEFAULT_NODE_TYPES = ("CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                      "KSamplerAdvanced", "VAEDecode", "LDPPromptTemplate", "LDPSaveDataset")


def sample_index_of(graph: dict) -> int | None:
    """The ``sample_index`` of the graph's LDPSaveDataset node (else the template ``index``)."""
    for class_type, key in (("LDPSaveDataset", "sample_index"), ("LDPPromptTemplate", "index")):
        for node in graph.values():
            if node.get("class_type") == class_type and isinstance(node["inputs"].get(key), int):
                return node["inputs"][key]
    return None


def dataset_name_of(graph: dict) -> str:
    for node in graph.values():
        if node.get("class_type") == "LDPSaveDataset":
            return str(node["inputs"].get("dataset_name", "dataset"))
    return "dataset"


class FakeComfyServer:
    def __init__(self, output_dir=None, *, exec_delay: float = 0.05,
                 node_types=DEFAULT_NODE_TYPES):
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.exec_delay = exec_delay
        self.node_types = tuple(node_types)
        self.fail_times: dict[int, int] = {}
        self.validation_errors: dict[int, tuple[str, str, str]] = {}
        self.reject_indices: set[int] = set()
        self.no_write_indices: set[int] = set()
        self.delay_for: dict[int, float] = {}
        self.disconnect_on: set[int] = set()
        self.status_for: dict[str, int] = {}
        self.html_for: set[str] = set()
        self.drip_for: dict[str, float] = {}
        self.paused = False
        self.ws_refuse = False
        self.ws_mute = False
        self.ws_silent_for: set[int] = set()
        self.ws_connections = 0
        self.spans: list[tuple[int | None, float, float]] = []
        self._sockets: list[_WsConnection] = []
        self.received: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.executed: list[int] = []
        self.deleted: list[str] = []
        self.max_outstanding = 0
        self.port = 0
        self._lock = threading.Lock()
        self._request_number = 0
        self._number = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._exec_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._work = threading.Condition(self._lock)
        self._queue: list[list] = []
        self._running: list | None = None
        self._history: dict[str, dict] = {}

    # ---- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeComfyServer":
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._stopped = threading.Event()
        self._serve_thread = threading.Thread(target=self._httpd.serve_forever,
                                              kwargs={"poll_interval": 0.02}, daemon=True)
        self._serve_thread.start()
        self._exec_thread = threading.Thread(target=self._execute_loop, args=(self._stopped,),
                                             daemon=True)
        self._exec_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and forget the queue and history (a real restart loses them too)."""
        if self._httpd is None:
            return
        self._stopped.set()
        with self._work:
            self._work.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self.close_websockets()
        self._serve_thread.join(5)
        self._exec_thread.join(5)
        self._httpd = None
        with self._lock:
            self._queue.clear()
            self._running = None
            self._history.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- recorded state -----------------------------------------------------------------------

    def received_indices(self) -> list[int]:
        with self._lock:
            return [sample_index_of(graph) for graph in self.received]

    # ---- execution ----------------------------------------------------------------------------

    def _execute_loop(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            with self._work:
                while (not self._queue or self.paused) and not stopped.is_set():
                    self._work.wait(0.05)
                if stopped.is_set():
                    return
                item = self._queue.pop(0)
                self._running = item
            graph = item[2]
            index = sample_index_of(graph)
            prompt_id, client_id = item[1], item[3].get("client_id")
            delay = self.delay_for.get(index, self.exec_delay)
            started = time.monotonic()
            self._send_event(client_id, index, "execution_start",
                             {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)})
            self._send_event(client_id, index, "executing", {"node": "9", "display_node": "9",
                                                             "prompt_id": prompt_id})
            if stopped.wait(delay):
                return  # stopped mid-job: the job is lost, like a killed ComfyUI
            entry = self._run_graph(prompt_id, graph, index)
            ended = time.monotonic()
            failed = entry["status"]["status_str"] == "error"
            # ComfyUI sends this from inside the execution, before the history entry exists.
            self._send_event(client_id, index, "execution_error" if failed
                             else "execution_success",
                             entry["status"]["messages"][-1][1] if failed else
                             {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)})
            with self._lock:
                if stopped.is_set():
                    return
                self._running = None
                self._history[prompt_id] = dict(entry, prompt=item)
                self.spans.append((index, started, ended))
            self._send_event(client_id, index, "executing", {"node": None, "display_node": None,
                                                             "prompt_id": prompt_id})
            self._send_status()

    def _run_graph(self, prompt_id: str, graph: dict, index: int | None) -> dict:
        with self._lock:
            remaining = self.fail_times.get(index, 0)
            if remaining:
                self.fail_times[index] = remaining - 1
        if remaining:
            now = int(time.time() * 1000)
            return {"outputs": {}, "meta": {}, "status": {
                "status_str": "error", "completed": False,
                "messages": [
                    ["execution_start", {"prompt_id": prompt_id, "timestamp": now}],
                    ["execution_error", {
                        "prompt_id": prompt_id, "node_id": "6", "node_type": "KSampler",
                        "executed": ["1", "2"], "exception_type": "RuntimeError",
                        "exception_message": f"fake failure for sample {index}",
                        "traceback": ["Traceback (most recent call last):\n", "..."],
                        "current_inputs": {}, "current_outputs": {}, "timestamp": now}]]}}
        if index is not None and self.output_dir is not None and index not in self.no_write_indices:
            import numpy as np  # here: the websocket benchmark runs the fake without numpy

            from comfyui_ld_portrait.dataset import DatasetWriter, index_id

            writer = DatasetWriter(self.output_dir / dataset_name_of(graph), durable=False)
            fg = np.full((4, 4, 3), 0.5, np.float32)
            alpha = np.ones((4, 4), np.float32)
            seed = next((n["inputs"].get("seed") for n in graph.values()
                         if n.get("class_type") == "KSampler"), None)
            writer.write_sample(index_id(index), fg, alpha, rejected=index in self.reject_indices,
                                meta={"seed": seed if isinstance(seed, int) else None,
                                      "prompt": f"fake prompt {index}"})
        with self._lock:
            self.executed.append(index)
        return {"outputs": {"9": {"images": []}}, "meta": {}, "status": {
            "status_str": "success", "completed": True,
            "messages": [["execution_start", {"prompt_id": prompt_id}],
                         ["execution_success", {"prompt_id": prompt_id}]]}}

    # ---- request handling (called by the handler) ------------------------------------------------

    def _next_request(self, method: str, path: str) -> bool:
        """Record the request; False when this one must be answered by a disconnect."""
        with self._lock:
            self._request_number += 1
            self.requests.append((method, path))
            return self._request_number not in self.disconnect_on

    def _post_prompt(self, body: dict) -> tuple[int, dict]:
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return 400, {"error": {"type": "no_prompt", "message": "No prompt provided",
                                   "details": "No prompt provided", "extra_info": {}},
                         "node_errors": {}}
        with self._lock:
            self.received.append(copy.deepcopy(prompt))
        for node_id, node in prompt.items():
            if node.get("class_type") not in self.node_types:
                return 400, {"error": {
                    "type": "invalid_prompt",
                    "message": f"Cannot execute because node {node.get('class_type')} does not "
                               "exist.", "details": f"Node ID '#{node_id}'", "extra_info": {}},
                    "node_errors": {}}
        index = sample_index_of(prompt)
        if index in self.validation_errors:
            node_id, message, details = self.validation_errors[index]
            return 400, {
                "error": {"type": "prompt_outputs_failed_validation",
                          "message": "Prompt outputs failed validation", "details": "",
                          "extra_info": {}},
                "node_errors": {node_id: {
                    "errors": [{"type": "value_not_in_list", "message": message,
                                "details": details, "extra_info": {}}],
                    "dependent_outputs": ["9"],
                    "class_type": prompt.get(node_id, {}).get("class_type", "?")}}}
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        with self._work:
            self._number += 1
            extra = {"client_id": body.get("client_id")}
            self._queue.append([self._number, prompt_id, prompt, extra, ["9"]])
            outstanding = len(self._queue) + (self._running is not None)
            self.max_outstanding = max(self.max_outstanding, outstanding)
            self._work.notify_all()
            number = self._number
        self._send_status()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": {}}

    # ---- websocket ----------------------------------------------------------------------------

    def _queue_remaining(self) -> int:
        with self._lock:
            return len(self._queue) + (self._running is not None)

    def _send_status(self) -> None:
        self._broadcast(None, {"type": "status", "data": {"status": {"exec_info": {
            "queue_remaining": self._queue_remaining()}}}})

    def _send_event(self, client_id, index, kind: str, data: dict) -> None:
        if client_id and index not in self.ws_silent_for:
            self._broadcast(client_id, {"type": kind, "data": data})

    def _broadcast(self, client_id, message: dict) -> None:
        """Send ``message`` to ``client_id``'s connections (every connection when None)."""
        if self.ws_mute:
            return
        with self._lock:
            targets = [c for c in self._sockets if client_id is None or c.client_id == client_id]
        frame = encode_frame(OP_TEXT, json.dumps(message).encode("utf-8"), mask=False)
        for connection in targets:
            if not connection.send(frame):
                self._forget(connection)

    def _forget(self, connection) -> None:
        with self._lock:
            if connection in self._sockets:
                self._sockets.remove(connection)

    def close_websockets(self) -> None:
        """Drop every websocket connection (the clients see the connection end)."""
        with self._lock:
            connections, self._sockets = list(self._sockets), []
        for connection in connections:
            connection.drop()

    def _get_queue(self) -> dict:
        with self._lock:
            running = [self._running] if self._running is not None else []
            return {"queue_running": copy.deepcopy(running),
                    "queue_pending": copy.deepcopy(self._queue)}

    def _get_history(self, prompt_id: str) -> dict:
        with self._lock:
            entry = self._history.get(prompt_id)
            return {prompt_id: copy.deepcopy(entry)} if entry is not None else {}

    def _post_queue(self, body: dict) -> None:
        with self._lock:
            for prompt_id in body.get("delete") or []:
                before = len(self._queue)
                self._queue = [item for item in self._queue if item[1] != prompt_id]
                if len(self._queue) < before:
                    self.deleted.append(prompt_id)

    def _misbehaviour(self, path: str):
        """``(kind, value)`` configured for ``path`` (first match), or None."""
        for prefix, seconds in self.drip_for.items():
            if path.startswith(prefix):
                return "drip", seconds
        if any(path.startswith(prefix) for prefix in self.html_for):
            return "html", None
        for prefix, status in self.status_for.items():
            if path.startswith(prefix):
                return "status", status
        return None

    def _object_info(self) -> dict:
        return {name: {"input": {"required": {}}, "output": [], "output_name": [], "name": name,
                       "display_name": name, "category": "fake", "output_node": False}
                for name in self.node_types}


class _WsConnection:
    """One accepted websocket: sends are serialised; :meth:`drop` ends it from any thread."""

    def __init__(self, sock, client_id: str):
        self.sock = sock
        self.client_id = client_id
        self.lock = threading.Lock()

    def send(self, frame: bytes) -> bool:
        with self.lock:
            try:
                self.sock.sendall(frame)
                return True
            except OSError:
                return False

    def drop(self) -> None:
        import socket

        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeComfyServer

    def log_message(self, *args):  # keep test output clean
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        misbehaviour = self.server_fake._misbehaviour(self.path)
        if misbehaviour and misbehaviour[0] == "drip":
            self._drip(status, data, content_type, misbehaviour[1])
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drip(self, status: int, data: bytes, content_type: str, seconds: float) -> None:
        """Send the whole answer one byte at a time, ``seconds`` apart (a socket timeout on
        the client restarts with every byte, so only a total deadline stops this)."""
        head = (f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode("ascii")
        self.close_connection = True
        stopped = self.server_fake._stopped
        for position in range(len(head + data)):
            if stopped.wait(seconds):
                return
            try:
                self.wfile.write((head + data)[position:position + 1])
            except OSError:  # the client gave up
                return

    def _misbehave(self) -> bool:
        """Answer a configured HTML page or error status; True when answered."""
        misbehaviour = self.server_fake._misbehaviour(self.path)
        if misbehaviour is None or misbehaviour[0] == "drip":
            return False
        if misbehaviour[0] == "html":
            self._send(200, b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
                            b"<body>Please sign in</body></html>", "text/html; charset=utf-8")
        else:
            self._answer(misbehaviour[1], {"error": "configured failure"})
        return True

    def do_GET(self):
        fake = self.server_fake
        if not fake._next_request("GET", self.path):
            self.close_connection = True
            return
        if self._misbehave():
            return
        if self.path == "/ws" or self.path.startswith("/ws?"):
            self._websocket()
        elif self.path == "/queue":
            self._answer(200, fake._get_queue())
        elif self.path.startswith("/history/"):
            self._answer(200, fake._get_history(self.path[len("/history/"):]))
        elif self.path == "/object_info":
            self._answer(200, fake._object_info())
        else:
            self._answer(404, {"error": "not found"})

    def _websocket(self) -> None:
        """Upgrade to a websocket and serve it until either side closes it."""
        fake = self.server_fake
        key = self.headers.get("Sec-WebSocket-Key")
        if fake.ws_refuse or not key or \
                self.headers.get("Upgrade", "").lower() != "websocket":
            self._answer(404, {"error": "not found"})
            return
        client_id = (parse_qs(urlsplit(self.path).query).get("clientId") or [""])[0]
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        connection = _WsConnection(self.connection, client_id)
        with fake._lock:
            fake._sockets.append(connection)
            fake.ws_connections += 1
        # ComfyUI greets every new connection with the queue status (and its session id).
        if not fake.ws_mute:
            connection.send(encode_frame(OP_TEXT, json.dumps({"type": "status", "data": {
                "status": {"exec_info": {"queue_remaining": fake._queue_remaining()}},
                "sid": client_id}}).encode("utf-8"), mask=False))
        buffer = bytearray()
        self.connection.settimeout(None)  # blocking both ways: one reader, serialised senders
        try:
            while True:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while (frame := parse_frame(buffer)) is not None:
                    _, opcode, payload, size = frame
                    del buffer[:size]
                    if opcode == OP_PING and not fake.ws_mute:
                        connection.send(encode_frame(OP_PONG, payload, mask=False))
                    elif opcode == OP_CLOSE:
                        connection.send(encode_frame(OP_CLOSE, payload[:2], mask=False))
                        return
        except (OSError, WebSocketError):
            pass
        finally:
            fake._forget(connection)

    def do_POST(self):
        fake = self.server_fake
        raw = self._body()
        if not fake._next_request("POST", self.path):
            self.close_connection = True
            return
        if self._misbehave():
            return
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except ValueError:
            self._answer(400, {"error": "bad json"})
            return
        if self.path == "/prompt":
            status, payload = fake._post_prompt(body)
            self._answer(status, payload)
        elif self.path == "/queue":
            fake._post_queue(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(404, {"error": "not found"})
