"""Following jobs through ComfyUI's websocket events (``/ws?clientId=<the queue's client id>``).

ComfyUI sends the messages about a prompt only to the client id that queued it (the prompt
POST carries ``client_id``), and ``status`` messages to every client::

    {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": N}}}}
    {"type": "execution_start", "data": {"prompt_id": ...}}
    {"type": "executing", "data": {"node": "9", "prompt_id": ...}}     a node starts
    {"type": "execution_success", "data": {"prompt_id": ...}}         before /history has it
    {"type": "execution_error" | "execution_interrupted", "data": {"prompt_id": ...}}
    {"type": "executing", "data": {"node": null, "prompt_id": ...}}    after /history has it

One :class:`EventListener` thread per server keeps that connection open, reconnecting with an
exponential back-off, and records what it hears in the server's :class:`ServerEvents`; it
never settles a job itself. The server's worker thread reads the result of an ended prompt
from ``/history`` (the one source of truth, so a job is counted once whichever way its end
was seen) and refills the slot at once. While the websocket is down or quiet the worker polls
as before, and after every (re)connection it reconciles once with ``/queue`` and ``/history``
(events sent while no connection was open are lost).
"""
from __future__ import annotations

import json
import threading
import time

from .websocket import OP_TEXT, WebSocketError, connect

__all__ = ["ServerEvents", "EventListener", "END_EVENTS", "FORGET_ENDED_AFTER"]

#: Message types that say a prompt has ended (``executing`` counts when its node is null).
END_EVENTS = frozenset({"execution_success", "execution_error", "execution_interrupted"})

#: An end event for a prompt the worker does not hold is kept this long (seconds): the event
#: can arrive before the ``POST /prompt`` answer that makes the prompt ours has been read.
FORGET_ENDED_AFTER = 60.0


class ServerEvents:
    """What one server's websocket said, shared by its listener and its worker thread.

    ``wake`` is set whenever the worker has something to do (a prompt ended, the connection
    came up or went down); the worker clears it before looking.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.live = False                 # connected now
        self.last_message = 0.0           # time.monotonic() of the last text message
        self.connected_at = 0.0
        self.reconcile = False            # poll /queue + /history once: events may be missed
        self.ended: dict[str, float] = {}    # prompt id -> when its end was heard
        self.started: dict[str, float] = {}  # prompt id -> when it began executing
        self.last_error = ""
        self.connections = 0              # successful (re)connections
        self.messages = 0

    def on_message(self, message: dict) -> None:
        """Record one decoded text message (any shape: unknown ones are ignored)."""
        kind = message.get("type")
        data = message.get("data")
        if not isinstance(data, dict):
            return
        prompt_id = data.get("prompt_id")
        now = time.monotonic()
        with self.lock:
            self.last_message = now
            self.messages += 1
            if isinstance(prompt_id, str) and (
                    kind in END_EVENTS or (kind == "executing" and data.get("node") is None)):
                self.ended.setdefault(prompt_id, now)
                self.started.pop(prompt_id, None)
                self.wake.set()
            elif isinstance(prompt_id, str) and kind in ("execution_start", "executing"):
                if prompt_id not in self.ended:
                    self.started.setdefault(prompt_id, now)
            elif kind == "status":
                remaining = _queue_remaining(data)
                if remaining == 0:
                    # The server is idle: whatever the worker still holds has ended (or was
                    # lost), so a missed end event is caught without waiting for the quiet poll.
                    self.reconcile = True
                    self.wake.set()

    def set_live(self, live: bool, error: str = "") -> None:
        with self.lock:
            if live:
                self.connections += 1
                self.connected_at = self.last_message = time.monotonic()
                self.reconcile = True   # anything that ended while we were not listening
            self.live = live
            if error:
                self.last_error = error
            self.wake.set()

    def take(self, held: set[str]) -> tuple[list[str], list[str]]:
        """``(ended, started)``: prompt ids among ``held`` (the worker's in-flight ids) whose
        end / start was heard; the ended ones are forgotten here, other ids after
        :data:`FORGET_ENDED_AFTER` seconds."""
        now = time.monotonic()
        with self.lock:
            return _take_held(self.ended, held, now), _take_held(self.started, held, now)

    def take_reconcile(self) -> bool:
        with self.lock:
            due, self.reconcile = self.reconcile, False
            return due

    def quiet_for(self) -> float:
        """Seconds since the last text message (infinite while not connected)."""
        with self.lock:
            return time.monotonic() - self.last_message if self.live else float("inf")


def _queue_remaining(data: dict):
    status = data.get("status")
    info = status.get("exec_info") if isinstance(status, dict) else None
    value = info.get("queue_remaining") if isinstance(info, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class EventListener:
    """A thread holding ``<url>/ws?clientId=<client_id>`` open and feeding ``events``.

    Parameters
    ----------
    url, client_id : str
        Server base URL and the queue's client id.
    events : ServerEvents
    connect_timeout : float
        Seconds for the connection and the handshake.
    quiet : float
        Without any frame for this long the listener pings; without any frame for twice this
        long the connection counts as dead and is reopened.
    backoff, backoff_max : float
        Reconnection pauses: ``backoff`` after the first failure, doubling up to
        ``backoff_max``.
    on_down : callable, optional
        ``on_down(reason, first)`` after a connection attempt failed or an open connection was
        lost; ``first`` is True the first time for this server (for one log line).
    """

    def __init__(self, url: str, client_id: str, events: ServerEvents, *,
                 connect_timeout: float, quiet: float, backoff: float, backoff_max: float,
                 on_down=None):
        self.url = url
        self.client_id = client_id
        self.events = events
        self.connect_timeout = connect_timeout
        self.quiet = quiet
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.on_down = on_down
        self._stopped = threading.Event()
        self._socket = None
        self._reported = False
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"ldp-queue events {url}")

    def start(self) -> "EventListener":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        sock = self._socket
        if sock is not None:
            sock.abort()  # ends a blocking recv at once

    def _down(self, reason: str) -> None:
        self.events.set_live(False, reason)
        if self.on_down is not None and not self._stopped.is_set():
            self.on_down(reason, not self._reported)
            self._reported = True

    def _run(self) -> None:
        pause = self.backoff
        while not self._stopped.is_set():
            try:
                self._socket = connect(self.url, self.client_id, self.connect_timeout)
            except (OSError, WebSocketError) as error:
                self._down(_describe(error))
                self._stopped.wait(pause)
                pause = min(pause * 2, self.backoff_max)
                continue
            if self._stopped.is_set():
                self._socket.close()
                return
            self.events.set_live(True)
            heard = self._listen(self._socket)
            self._socket.close()
            self._socket = None
            if heard:  # a connection that worked: start the back-off again
                pause = self.backoff
            self._stopped.wait(pause)
            pause = min(pause * 2, self.backoff_max)

    def _listen(self, ws) -> bool:
        """Read until the connection ends; True if any message arrived."""
        heard = False
        pinged = False
        while not self._stopped.is_set():
            try:
                opcode, payload = ws.recv(self.quiet)
            except TimeoutError:
                if pinged:
                    self._down(f"websocket silent for {2 * self.quiet:g} s (no answer to a ping)")
                    return heard
                try:
                    ws.ping()
                except OSError as error:
                    self._down(_describe(error))
                    return heard
                pinged = True
                continue
            except (OSError, WebSocketError) as error:
                if not self._stopped.is_set():
                    self._down(_describe(error))
                return heard
            pinged = False
            if opcode != OP_TEXT:
                continue  # pongs, binary previews
            try:
                message = json.loads(payload.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(message, dict):
                heard = True
                self.events.on_message(message)
        return heard


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "websocket connection refused"
    if isinstance(error, TimeoutError):
        return "websocket: no answer in time"
    if isinstance(error, WebSocketError):
        return f"websocket: {error}"
    return f"websocket: {type(error).__name__}: {error}"


def _take_held(heard: dict[str, float], held: set[str], now: float) -> list[str]:
    """The prompt ids of ``heard`` (id -> when it was heard) that are among ``held``, removed
    from it, and those heard more than :data:`FORGET_ENDED_AFTER` seconds before ``now``
    dropped (a job another client holds, or one this worker gave up)."""
    taken = [pid for pid in heard if pid in held]
    for pid in taken:
        del heard[pid]
    for pid, when in list(heard.items()):
        if now - when > FORGET_ENDED_AFTER:
            del heard[pid]
    return taken
