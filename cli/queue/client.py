"""HTTP client for ComfyUI servers and readers of their answers.

Standard library only (``http.client``); HTTP proxies from the environment are not used. One
request per connection, so no keep-alive state goes stale when a server restarts. Every
request has a total wall-clock deadline covering connect, send and the whole answer: a socket
timeout alone starts again with every byte received, so a server that answers one byte per
second would otherwise hold a worker for ever.
"""
from __future__ import annotations

import dataclasses
import http.client
import io
import json
import socket
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

from .graph import node_order

__all__ = ["ServerUnreachable", "Answer", "HttpClient", "MAX_ANSWER_BYTES",
           "normalize_server_url", "format_validation_error", "parse_history_entry",
           "decode_json", "short_text"]

#: Largest answer read (``/object_info`` of a host with many node packs is a few MB).
MAX_ANSWER_BYTES = 256 * 1024 * 1024

_HTML_HINT = "the server answered HTML, not JSON: is this a ComfyUI server?"


def _seconds(value: float) -> str:
    """A deadline for messages: ``30``, ``0.3``, and ``28`` for a cut one of 27.9666 s."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


class ServerUnreachable(Exception):
    """Transport failure (refused, reset, closed, no complete answer in time) or an answer the
    queue cannot use (wrong status, not JSON); the message says which."""


def short_text(text, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalize_server_url(text: str) -> str:
    """``"127.0.0.1:8188"`` -> ``"http://127.0.0.1:8188"``; keeps a path prefix (reverse proxy)."""
    raw = str(text).strip()
    if not raw:
        raise ValueError("--server is empty; give a URL such as http://127.0.0.1:8188.")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server {text!r}: only http:// and https:// URLs are supported.")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"server {text!r} has an invalid port.") from None
    if not parts.hostname:
        raise ValueError(f"server {text!r} has no host name.")
    if parts.query or parts.fragment:
        raise ValueError(f"server {text!r}: leave out '?...' and '#...'.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


# --------------------------------------------------------------------------------------------
# Transport with a total deadline
# --------------------------------------------------------------------------------------------

class _DeadlineSocket:
    """A socket stand-in that, before every send and receive, sets the socket timeout to the
    time left until a fixed wall-clock deadline (so the deadline bounds the whole exchange).

    ``http.client`` sends with ``sendall`` and reads the answer through ``makefile("rb")``; the
    file made here reads through this object, so every ``recv_into`` is bounded too.
    """

    def __init__(self, sock, deadline: float, budget: float):
        self._sock = sock
        self._deadline = deadline
        self._budget = budget

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete answer within {_seconds(self._budget)} s")
        self._sock.settimeout(remaining)

    def sendall(self, data, *flags):
        self._arm()
        return self._sock.sendall(data, *flags)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0):
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", buffering=None, **_ignored):
        if "w" in mode:
            raise ValueError("the deadline socket only reads through makefile")
        # As socket.makefile does: the file holds a reference, so that closing the connection
        # (http.client does so once the headers say it will close) waits for the answer's file.
        self._sock._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"))

    def _decref_socketios(self) -> None:
        self._sock._decref_socketios()

    def __getattr__(self, name):  # close, fileno, setsockopt, ... go to the real socket
        return getattr(self._sock, name)


class _DeadlineMixin:
    """``connect`` within the time left, then wrap the socket in :class:`_DeadlineSocket`."""

    deadline = 0.0
    budget = 0.0

    def connect(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete answer within {_seconds(self.budget)} s")
        self.timeout = remaining
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self.deadline, self.budget)


class _HTTPConnection(_DeadlineMixin, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineMixin, http.client.HTTPSConnection):
    pass


def _describe_transport_error(error: BaseException, timeout: float) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return f"no complete answer within {_seconds(timeout)} s"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return "connection reset"
    return short_text(f"{type(error).__name__}: {error}", 160)


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP answer: status code, body bytes, the ``Content-Type`` header and the status
    line's reason phrase (``"Internal Server Error"``)."""

    status: int
    body: bytes
    content_type: str = ""
    reason: str = ""

    def describe(self, limit: int = 200) -> str:
        """``"HTTP 500 Internal Server Error: <body excerpt>"``: what the server said, for
        messages (an HTML page is named as such rather than quoted)."""
        head = f"HTTP {self.status}" + (f" {self.reason.strip()}" if self.reason.strip() else "")
        if self.looks_like_html():
            return f"{head}: an HTML page; is this a ComfyUI server?"
        text = self.text(limit)
        return f"{head}: {text}" if text else f"{head} (empty body)"

    def looks_like_html(self) -> bool:
        head = self.body[:512].lstrip().lower()
        return "html" in self.content_type.lower() or head.startswith((b"<!doctype", b"<html"))

    def text(self, limit: int = 200) -> str:
        return short_text(self.body.decode("utf-8", "replace"), limit)


def decode_json(answer: Answer, what: str) -> Any:
    """The JSON in ``answer``; :class:`ServerUnreachable` saying what it was instead.

    ``what`` names the request in the message, e.g. ``"GET /queue"``.
    """
    try:
        return json.loads(answer.body.decode("utf-8"))
    except (ValueError, RecursionError):
        if answer.looks_like_html():
            raise ServerUnreachable(f"{what}: {_HTML_HINT}") from None
        detail = f" ({answer.text(80)})" if answer.body.strip() else " (an empty answer)"
        raise ServerUnreachable(f"{what} answered something that is not JSON{detail}") from None


class HttpClient:
    """Requests to one ComfyUI base URL, each bounded by ``timeout`` seconds in total.

    Parameters
    ----------
    url : str
        Base URL as :func:`normalize_server_url` returns it (may carry a path prefix).
    timeout : float
        Seconds from the start of a request until its whole answer has arrived (name
        resolution of a host name is not covered: use an IP address if DNS may hang).
    max_answer_bytes : int
        A longer answer is refused (:class:`ServerUnreachable`).
    """

    def __init__(self, url: str, timeout: float, max_answer_bytes: int = MAX_ANSWER_BYTES):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes

    def request(self, method: str, path: str, payload=None, *,
                timeout: float | None = None) -> Answer:
        """Send one request; :class:`ServerUnreachable` on any transport failure or overrun.

        ``timeout`` (seconds, total) replaces the client's deadline for this request only.
        """
        budget = self.timeout if timeout is None else timeout
        factory = _HTTPSConnection if self.https else _HTTPConnection
        connection = factory(self.host, self.port, timeout=budget)
        connection.deadline = time.monotonic() + budget
        connection.budget = budget
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(method, self.prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            data = self._read_body(response, f"{method} {path}")
            return Answer(response.status, data, response.getheader("Content-Type") or "",
                          response.reason or "")
        except (OSError, http.client.HTTPException) as error:
            raise ServerUnreachable(_describe_transport_error(error, budget)) from error
        finally:
            connection.close()

    def _read_body(self, response, what: str) -> bytes:
        # In pieces: one read(limit) would allocate the whole limit up front.
        pieces, size = [], 0
        while True:
            piece = response.read(1 << 20)
            if not piece:
                return b"".join(pieces)
            size += len(piece)
            if size > self.max_answer_bytes:
                raise ServerUnreachable(f"{what} answered more than "
                                        f"{self.max_answer_bytes / 2**20:g} MiB")
            pieces.append(piece)

    def get_json(self, path: str) -> Any:
        """JSON of a 200 answer; :class:`ServerUnreachable` for anything else."""
        answer = self.request("GET", path)
        if answer.status != 200:
            raise ServerUnreachable(f"GET {path} answered {answer.describe(120)}")
        return decode_json(answer, f"GET {path}")


# --------------------------------------------------------------------------------------------
# Reading ComfyUI's answers
# --------------------------------------------------------------------------------------------

def format_validation_error(body) -> str:
    """One readable line from ComfyUI's HTTP 400 body ``{"error": ..., "node_errors": ...}``.

    ``error`` is ``{"type", "message", "details", "extra_info"}`` (a plain string on old hosts);
    ``node_errors`` maps node ids to ``{"errors": [{"message", "details"}], "class_type"}``.
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            return short_text(body.decode("utf-8", "replace")) or "(empty answer)"
    if not isinstance(body, dict):
        return short_text(body)
    parts = []
    error = body.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or "validation failed")
        details = str(error.get("details") or "").strip()
        parts.append(f"{message} ({details})" if details else message)
    elif error:
        parts.append(str(error))
    node_errors = body.get("node_errors") or {}
    if isinstance(node_errors, dict):
        for node_id in sorted(node_errors, key=node_order):
            entry = node_errors[node_id]
            if not isinstance(entry, dict):
                continue
            class_type = entry.get("class_type", "?")
            for item in entry.get("errors") or []:
                if isinstance(item, dict):
                    message = str(item.get("message", "")).strip()
                    details = str(item.get("details", "")).strip()
                    text = f"{message}: {details}" if message and details else message or details
                else:
                    text = str(item)
                parts.append(f"node {node_id} ({class_type}): {text}")
    return short_text("; ".join(parts) or "validation failed (no details given)", 600)


def parse_history_entry(entry: Mapping) -> tuple[bool, str]:
    """``(succeeded, reason)`` from one ``/history/<id>`` entry.

    Failure: ``status.status_str == "error"`` or an ``execution_error`` /
    ``execution_interrupted`` message (the reason names the node and the exception). Entries
    without ``status`` (very old hosts) count as success.
    """
    status = entry.get("status") if isinstance(entry, Mapping) else None
    if not isinstance(status, Mapping):
        return True, ""
    messages = status.get("messages") or []
    for item in messages:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            continue
        kind, data = item
        data = data if isinstance(data, Mapping) else {}
        if kind == "execution_error":
            node = f"node {data.get('node_id', '?')} ({data.get('node_type', '?')})"
            exc_type = data.get("exception_type") or "error"
            return False, short_text(f"execution error in {node}: {exc_type}: "
                                     f"{str(data.get('exception_message') or '').strip()}")
        if kind == "execution_interrupted":
            return False, "execution was interrupted on the server"
    if status.get("status_str") == "error":
        return False, "the server reported an error (no details in its history)"
    return True, ""
