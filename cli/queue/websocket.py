"""A minimal RFC 6455 websocket client (standard library only) for ComfyUI's ``/ws`` events.

Why not a package: the queue needs one read-mostly connection per server carrying small JSON
text frames (and binary preview frames it skips); no extensions, no compression, no
subprotocols. About 200 lines of ``socket`` code keep ``ld-portrait queue`` free of a new
dependency (ComfyUI hosts and the pack's users install nothing more) and free of an event
loop: the queue is threaded, and one blocking reader thread per server fits it. The frame
codec here is also what the tests' fake ComfyUI server speaks, so both ends share it.

Reading never loses bytes on a timeout: received bytes stay in the connection's buffer until a
whole frame is there, so :meth:`WebSocket.recv` can be called again after ``TimeoutError``.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from urllib.parse import quote, urlsplit

__all__ = ["WebSocket", "WebSocketError", "connect", "encode_frame", "parse_frame",
           "accept_key", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
           "MAX_MESSAGE_BYTES"]

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: Largest message accepted: ComfyUI's binary preview frames are JPEG/PNG previews of at most a
#: few MB; anything far larger is not ComfyUI, and the connection is dropped (polling remains).
MAX_MESSAGE_BYTES = 64 * 2**20

#: Largest handshake answer head: a real one is a few hundred bytes.
_MAX_HEAD_BYTES = 64 * 1024

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # fixed by RFC 6455, section 1.3


class WebSocketError(Exception):
    """The websocket could not be opened, or the peer broke the protocol or closed it."""


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server answers to ``Sec-WebSocket-Key: key``."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode("ascii")).digest()).decode("ascii")


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame; clients must mask (``mask=True``), servers must not."""
    head = bytearray([0x80 | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _apply_mask(payload, key)


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    # XOR in one big-integer operation: fast enough for megabyte frames without numpy.
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def parse_frame(buffer: bytearray, max_bytes: int = MAX_MESSAGE_BYTES):
    """``(fin, opcode, payload, frame length)`` of the frame at the start of ``buffer``, or
    None while it is incomplete; :class:`WebSocketError` for a frame over ``max_bytes``."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    length = second & 0x7F
    position = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = struct.unpack_from("!H", buffer, 2)[0]
        position = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = struct.unpack_from("!Q", buffer, 2)[0]
        position = 10
    if length > max_bytes:
        raise WebSocketError(f"a websocket frame of {length} bytes (more than "
                             f"{max_bytes // 2**20} MiB)")
    key = None
    if second & 0x80:
        if len(buffer) < position + 4:
            return None
        key = bytes(buffer[position:position + 4])
        position += 4
    end = position + length
    if len(buffer) < end:
        return None
    payload = bytes(buffer[position:end])
    if key is not None:
        payload = _apply_mask(payload, key)
    return bool(first & 0x80), first & 0x0F, payload, end


class WebSocket:
    """An open client connection; made by :func:`connect`."""

    def __init__(self, sock: socket.socket, leftover: bytes = b""):
        self._sock = sock
        self._buffer = bytearray(leftover)
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.closed = False

    def recv(self, timeout: float | None) -> tuple[int, bytes]:
        """The next whole message ``(OP_TEXT or OP_BINARY, payload)`` or ``(OP_PONG, b"")``.

        Pings are answered here. ``TimeoutError`` when nothing complete arrived within
        ``timeout`` seconds (the connection stays usable); :class:`WebSocketError` when the
        peer closed or broke the protocol; ``OSError`` for transport failures.
        """
        while True:
            frame = parse_frame(self._buffer)
            if frame is None:
                self._sock.settimeout(timeout)
                chunk = self._sock.recv(1 << 16)  # socket.timeout is TimeoutError
                if not chunk:
                    self.closed = True
                    raise WebSocketError("the server closed the connection")
                self._buffer += chunk
                continue
            fin, opcode, payload, size = frame
            del self._buffer[:size]
            if opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_PONG:
                return OP_PONG, b""
            elif opcode == OP_CLOSE:
                self.closed = True
                try:
                    self._send(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                raise WebSocketError("the server closed the websocket")
            elif opcode in (OP_TEXT, OP_BINARY) and fin and not self._fragments:
                return opcode, payload
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                if opcode != OP_CONTINUATION:
                    self._fragments, self._fragment_opcode = [], opcode
                self._fragments.append(payload)
                if sum(len(part) for part in self._fragments) > MAX_MESSAGE_BYTES:
                    raise WebSocketError("a websocket message over "
                                         f"{MAX_MESSAGE_BYTES // 2**20} MiB")
                if fin:
                    message, self._fragments = b"".join(self._fragments), []
                    return self._fragment_opcode, message
            else:
                raise WebSocketError(f"unknown websocket opcode {opcode}")

    def ping(self) -> None:
        self._send(OP_PING, b"ldp")

    def _send(self, opcode: int, payload: bytes) -> None:
        self._sock.settimeout(5.0)  # a few small frames: a peer that cannot take them is gone
        self._sock.sendall(encode_frame(opcode, payload, mask=True))

    def abort(self) -> None:
        """Close from another thread: ``shutdown`` ends a ``recv`` blocked in the reader."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._send(OP_CLOSE, struct.pack("!H", 1000))
            except OSError:
                pass
        try:
            self._sock.close()
        except OSError:
            pass


def connect(base_url: str, client_id: str, timeout: float) -> WebSocket:
    """Open ``<base_url>/ws?clientId=<client_id>`` (``ws://``, or ``wss://`` for https).

    ``timeout`` bounds the connection and the handshake; :class:`WebSocketError` (refused,
    no upgrade: an old host or a proxy that does not pass websockets) or ``OSError``.
    """
    parts = urlsplit(base_url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    path = f"{parts.path.rstrip('/')}/ws?clientId={quote(client_id, safe='')}"
    sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    try:
        if https:
            import ssl  # only for https servers: it costs start-up time

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        host = parts.netloc.rsplit("@", 1)[-1]
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode("ascii"))
        head = bytearray()
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise WebSocketError("the server closed the connection during the handshake")
            head += chunk
            if len(head) > _MAX_HEAD_BYTES:
                raise WebSocketError("the websocket handshake answer is too long")
        head_bytes, _, leftover = bytes(head).partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise WebSocketError(f"no websocket upgrade (answered {lines[0].strip()!r})")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept") != accept_key(key):
            raise WebSocketError("the websocket handshake answer has a wrong accept key")
        return WebSocket(sock, leftover)
    except BaseException:
        sock.close()
        raise
