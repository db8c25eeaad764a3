"""The serial job protocol's frames and payloads (host side; the firmware side is
firmware/harness/serial_link.c, the layout is documented in docs/serial-protocol.md).

A frame is ``A5 5A | type | seq | len (u16 LE) | CRC-8 of type..len | payload | CRC-32 (LE)
of everything from type to the payload's end``. The decoder drops a frame whose header or CRC
does not check one byte at a time and searches the bytes it already holds for the next start,
exactly as the firmware does, so garbage, dropped and corrupted bytes never cost more than the
frame they hit.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

PROTOCOL_VERSION = 1
SOF = b"\xa5\x5a"
HEADER = 7
TRAILER = 4
MAX_PAYLOAD = 1024  # the firmware's receive buffer; HELLO reports the board's own figure
BOOT_MAGIC = 0x4C535441  # "ATSL"


class Type(IntEnum):
    """Frame types. A reply's type is its request's with bit 7 set."""

    HELLO = 0x01
    WRITE = 0x02
    RUN = 0x03
    READ = 0x04
    HELLO_REPLY = 0x81
    WRITE_REPLY = 0x82
    RUN_REPLY = 0x83
    READ_REPLY = 0x84
    BOOT = 0xB0  # unsolicited, sequence 0: the firmware has (re)started
    ERROR = 0xFF


class LinkError(IntEnum):
    """Error codes in an ERROR frame (first payload byte)."""

    UNKNOWN_TYPE = 1
    LENGTH = 2
    RANGE = 3
    SESSION = 4  # no HELLO since the board reset, or another session's nonce
    UPLOAD_CRC = 5  # the board applied other writes than the host sent
    JOBS = 6


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial value 0 (the header check)."""
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 as zlib computes it (the firmware's table gives the same values)."""
    return zlib.crc32(data, crc) & 0xFFFFFFFF


@dataclass(frozen=True)
class Frame:
    """One checked frame."""

    type: int
    seq: int
    payload: bytes


def encode(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    head = struct.pack("<BBH", type_, seq & 0xFF, len(payload))
    body = head + bytes([crc8(head)]) + payload
    return SOF + body + struct.pack("<I", crc32(body))


class Decoder:
    """Frames out of a byte stream; resynchronises after garbage or damage."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self.buf = bytearray()
        self.dropped = 0  # bytes discarded while searching for a valid frame

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete, valid frame now available."""
        self.buf += data
        frames = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _drop(self, n: int = 1) -> None:
        del self.buf[:n]
        self.dropped += n

    def _next(self) -> Frame | None:
        buf = self.buf
        while True:
            start = buf.find(SOF[0])
            if start < 0:
                self._drop(len(buf))
                return None
            if start:
                self._drop(start)
            if len(buf) < 2:
                return None
            if buf[1] != SOF[1]:
                self._drop()
                continue
            if len(buf) < HEADER:
                return None
            length = buf[4] | buf[5] << 8
            if crc8(bytes(buf[2:6])) != buf[6] or length > self.max_payload:
                self._drop()
                continue
            end = HEADER + length + TRAILER
            if len(buf) < end:
                return None
            (want,) = struct.unpack_from("<I", buf, HEADER + length)
            if crc32(bytes(buf[2:HEADER + length])) != want:
                self._drop()
                continue
            frame = Frame(buf[2], buf[3], bytes(buf[HEADER:HEADER + length]))
            del buf[:end]
            return frame


# -- payloads ------------------------------------------------------------------------------------

_HELLO = struct.Struct("<12I")


@dataclass(frozen=True)
class Hello:
    """What the board says about itself in its HELLO reply."""

    version: int
    max_payload: int
    job_size: int
    max_jobs: int
    jobs_address: int
    arena_start: int
    arena_end: int
    clock_hz: int
    image_start: int  # vector table
    image_end: int  # __flash_used_end
    image_crc: int  # CRC-32 of the flash image [image_start, image_end)
    session: int
    board: str

    @classmethod
    def parse(cls, payload: bytes) -> Hello:
        """Decode a HELLO reply payload."""
        fields = _HELLO.unpack_from(payload)
        return cls(*fields, payload[_HELLO.size:].decode("ascii", errors="replace"))


def hello_reply(h: Hello) -> bytes:
    """The HELLO reply payload (the inverse of :meth:`Hello.parse`)."""
    return _HELLO.pack(h.version, h.max_payload, h.job_size, h.max_jobs, h.jobs_address,
                       h.arena_start, h.arena_end, h.clock_hz, h.image_start, h.image_end,
                       h.image_crc, h.session) + h.board.encode("ascii")


def run_request(session: int, upload_crc: int, outputs: list[tuple[int, int]]) -> bytes:
    """RUN payload: session, upload CRC, job count, then (output address, length) per job."""
    head = struct.pack("<3I", session, upload_crc, len(outputs))
    return head + b"".join(struct.pack("<2I", a, n) for a, n in outputs)


@dataclass(frozen=True)
class Result:
    """A RUN reply: kernel status, and DWT CYCCNT cycles and output CRC-32 of each job run."""

    status: int
    total_cycles: int
    cycles: tuple[int, ...]
    output_crcs: tuple[int, ...]

    @classmethod
    def parse(cls, payload: bytes) -> Result:
        """Decode a RUN reply payload."""
        status, done, total = struct.unpack_from("<iII", payload)
        pairs = [struct.unpack_from("<2I", payload, 12 + 8 * i) for i in range(done)]
        return cls(status, total, tuple(c for c, _ in pairs), tuple(k for _, k in pairs))

    def encode(self) -> bytes:
        """The payload bytes (the inverse of :meth:`parse`)."""
        head = struct.pack("<iII", self.status, len(self.cycles), self.total_cycles)
        return head + b"".join(struct.pack("<2I", c, k)
                               for c, k in zip(self.cycles, self.output_crcs, strict=True))


@dataclass(frozen=True)
class ErrorReply:
    """An ERROR frame: which request failed, why, and a detail word."""

    code: int
    request: int
    detail: int

    @classmethod
    def parse(cls, payload: bytes) -> ErrorReply:
        """Decode an ERROR payload."""
        code, request, _, detail = struct.unpack_from("<BBHI", payload)
        return cls(code, request, detail)

    def describe(self) -> str:
        """A human-readable line."""
        try:
            what = LinkError(self.code).name
        except ValueError:
            what = f"code {self.code}"
        return f"board refused request 0x{self.request:02X}: {what} (detail 0x{self.detail:X})"
