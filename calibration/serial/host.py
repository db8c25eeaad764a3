"""The host side of a board on a serial port: the harness's jobs over pyserial.

:class:`SerialBoard` opens a port (``/dev/ttyACM0``, ``COM5``, a pseudo-terminal, any pyserial
URL), checks with HELLO that the board runs exactly the harness ELF the host built (CRC-32 of
the flash image, board id, descriptor size), uploads a case's descriptor, weights,
quantization tables and input into the board's RAM arena, runs it and returns the DWT CYCCNT
cycles of the kernel. Every output's CRC-32 is compared with the numpy reference: a board that
computes wrongly raises :class:`~calibration.serial.errors.BoardComputedWrongly` instead of
being calibrated.

Each request is retried on a timeout with a growing wait (bounded); a board that restarted
(BOOT frame, or it no longer knows the session) gets HELLO and the upload again, bounded by
``max_resets``; a port that goes away is :class:`~calibration.serial.errors.BoardDisconnected`.

Placement differs from the emulator's memory path in one documented way: the weights live in
RAM (the arena), not in flash, because a board cannot be written flash over the console.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import serial

from atomsim.boards import Board
from atomsim.core.errors import ConfigError, DoesNotFit
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from atomsim.nn.ops.cases import KernelCall
from atomsim.profiling import profiler
from atomsim.target import elf as elfmod
from atomsim.target.contract import Contract, read_contract
from calibration.serial import protocol as P
from calibration.serial.errors import (
    BoardComputedWrongly,
    BoardDisconnected,
    BoardMismatch,
    BoardNotResponding,
    BoardRefused,
    BoardReset,
    FlashingFailed,
    NotASerialPort,
)

HARNESS_MAGIC_NAME = "ATOMSIM_HARNESS_MAGIC"
JOB_TYPE = "atomsim_job_t"
# operators with weights and bias (their filter is a weight tensor, not a lookup table)
WEIGHT_OPS = tuple(op.name for op in registry.OPERATORS if "bias" in op.args)


@dataclass(frozen=True)
class LinkSettings:
    """How patient the host is. Waits grow by ``backoff`` per retry of one request."""

    baudrate: int = 115200
    timeout_s: float = 1.0  # first wait for a reply to HELLO, WRITE, READ
    run_timeout_s: float = 60.0  # first wait for a RUN reply (the kernel runs meanwhile)
    retries: int = 4  # retransmissions of one request before BoardNotResponding
    backoff: float = 1.5
    max_resets: int = 3  # board restarts tolerated while one case is measured
    chunk_bytes: int = 256  # data per WRITE: small frames survive a noisy line more often


_NOT_A_TTY = {stat.S_IFREG: "a regular file", stat.S_IFDIR: "a directory",
              stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket",
              stat.S_IFBLK: "a block device (a disk)"}


def check_port(port: str) -> None:
    """Refuse a port that cannot be a board's serial line, before any work and sending nothing.

    A pyserial URL must have a scheme pyserial knows (``NotASerialPort``). A path must exist
    (``BoardDisconnected`` otherwise: the board is unplugged) and be a terminal: a regular
    file, a directory or a character device that is no tty (``/dev/null``) is
    ``NotASerialPort``. A character device is opened (non-blocking, not as the controlling
    terminal) and closed once to ask. Names that are not paths (Windows ``COM5``) pass.
    """
    if "://" in port:
        try:
            serial.serial_for_url(port, do_not_open=True)
        except (ValueError, serial.SerialException) as exc:
            raise NotASerialPort(port, f"pyserial cannot open this URL ({exc})") from None
        return
    if os.name != "posix":
        return
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        raise BoardDisconnected(port, "cannot open it: no such port") from None
    except OSError as exc:
        raise BoardDisconnected(port, f"cannot open it: {exc.strerror or exc}") from None
    kind = _NOT_A_TTY.get(stat.S_IFMT(mode))
    if kind is not None:
        raise NotASerialPort(port, f"it is {kind}")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise BoardDisconnected(port, f"cannot open it: {exc.strerror or exc}") from None
    try:
        is_tty = os.isatty(fd)
    finally:
        os.close(fd)
    if not is_tty:
        raise NotASerialPort(port, "it is a character device that is not a terminal (tty)")


def image_crc(elf: Path, start: int, end: int) -> int:
    """CRC-32 of the ELF's loadable bytes in [start, end) as flash holds them (gaps erased)."""
    fw = elfmod.load(elf)
    image = bytearray(b"\xff" * (end - start))
    for seg in fw.segments:
        lo, hi = max(seg.paddr, start), min(seg.paddr + len(seg.data), end)
        if lo < hi:
            image[lo - start:hi - start] = seg.data[lo - seg.paddr:hi - seg.paddr]
    return P.crc32(bytes(image))


def weight_bytes(filter_dims, out_dims, op: str) -> int:
    """Bytes of int8 weights + int32 bias of a kernel call (Atom.flash_bytes' convention)."""
    return int(np.prod(filter_dims)) + 4 * int(out_dims[3]) if op in WEIGHT_OPS else 0


@dataclass(frozen=True)
class Upload:
    """A placed set of jobs: what to write where, and what the outputs must hash to."""

    writes: tuple[tuple[int, bytes], ...]  # (address, bytes), descriptors last
    outputs: tuple[tuple[int, int], ...]  # (address, size) per job
    expected_crcs: tuple[int, ...]
    arena_bytes: int


def place(cases: list[KernelCall], contract: Contract, hello: P.Hello, variant: str,
          chain: bool = False) -> Upload:
    """Lay cases out in the board's arena and pack their descriptors by field name.

    Raises DoesNotFit (with the sizes) when the data do not fit the board's arena.
    """
    if not 1 <= len(cases) <= hello.max_jobs:
        raise ConfigError(f"a board run takes 1 to {hello.max_jobs} kernels, got {len(cases)}")
    job_t = contract.type(JOB_TYPE)
    magic = contract.enumerator(HARNESS_MAGIC_NAME)
    cursor = hello.arena_start
    writes: list[tuple[int, bytes]] = []
    outputs, crcs, descriptors = [], [], []

    def reserve(size: int) -> int:
        nonlocal cursor
        addr, cursor = cursor, (cursor + size + 7) & ~7
        return addr

    def put(array: np.ndarray | None) -> int:
        if array is None:
            return 0
        data = np.ascontiguousarray(array).tobytes()
        addr = reserve(len(data))
        writes.append((addr, data))
        return addr

    prev = None
    for case in cases:
        filt, bias = put(case.filter), put(case.bias)
        mult, shift = put(case.multiplier), put(case.shift)
        if chain and prev is not None and prev[1] == tuple(case.in_dims):
            inp = prev[0]
        else:
            inp = put(case.input)
        inp2 = put(case.input2)
        out_size = int(np.prod(case.out_dims))
        out = reserve(out_size)
        scratch_size = registry.scratch_bytes(case, variant)
        scratch = reserve(scratch_size) if scratch_size else 0
        if cursor > hello.arena_end:
            raise DoesNotFit("ram (activation arena)", cursor - hello.arena_start,
                             hello.arena_end - hello.arena_start, what="atom (serial upload)")
        params = dataclasses.astuple(case.params) if case.params is not None else ()
        descriptors.append(job_t.pack(
            magic=magic, size=job_t.size, op=contract.enumerator(registry.operator(case.op).c_id),
            in_dims=case.in_dims, in2_dims=case.in2_dims, filter_dims=case.filter_dims,
            out_dims=case.out_dims, params=params, input=inp, input2=inp2, filter=filt,
            bias=bias, multiplier=mult, shift=shift, output=out, scratch=scratch,
            scratch_size=scratch_size))
        outputs.append((out, out_size))
        prev = (out, tuple(case.out_dims))
    for expected in _expected_outputs(cases, chain):
        crcs.append(P.crc32(np.ascontiguousarray(expected, dtype=np.int8).tobytes()))
    writes.append((hello.jobs_address, b"".join(descriptors)))
    return Upload(tuple(writes), tuple(outputs), tuple(crcs), cursor - hello.arena_start)


def _expected_outputs(cases: list[KernelCall], chain: bool) -> list[np.ndarray]:
    """The numpy reference of each job; chained jobs read the previous reference output."""
    outs, prev = [], None
    for case in cases:
        if chain and prev is not None and tuple(prev.shape) == tuple(case.in_dims):
            case = dataclasses.replace(case, input=prev)
        prev = registry.expected_output(case)
        outs.append(prev)
    return outs


@dataclass(frozen=True)
class BoardRun:
    """One measured run: DWT cycles per job and in total, output CRCs (checked)."""

    cycles: tuple[int, ...]
    total_cycles: int
    output_crcs: tuple[int, ...]


class _Restarted(Exception):
    """Internal: the board lost the session (it reset); upload again."""


class SerialBoard:
    """A board running the harness ELF, reached over a serial port."""

    def __init__(self, port: str | serial.SerialBase, board: Board, elf: Path | str,
                 variant: str = profiler.DEFAULT_VARIANT,
                 settings: LinkSettings | None = None):
        self.board, self.elf, self.variant = board, Path(elf), variant
        self.settings = settings or LinkSettings()
        if not self.elf.is_file():
            raise ConfigError(f"no harness ELF at {self.elf} (atomsim.profiling.profiler."
                              "harness_elf(board) builds it)")
        self.contract = read_contract(self.elf)
        if isinstance(port, serial.SerialBase):
            self.serial, self.port = port, port.port or repr(port)
        else:
            self.port = str(port)
            try:
                self.serial = serial.serial_for_url(self.port, baudrate=self.settings.baudrate,
                                                    timeout=0.05)
            except (serial.SerialException, OSError, ValueError) as exc:
                check_port(self.port)  # a path that is no serial line gets its own name
                raise BoardDisconnected(self.port, f"cannot open it: {exc}") from None
        self.decoder = P.Decoder()
        self._seq = 0
        self.hello: P.Hello | None = None
        self._upload_crc = 0
        self._uploaded: Upload | None = None
        self.stats = {"retransmits": 0, "resets": 0, "boot_frames": 0}

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> SerialBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the port (idempotent)."""
        try:
            self.serial.close()
        except (serial.SerialException, OSError):
            pass

    def connect(self) -> P.Hello:
        """HELLO with a fresh session; check the board runs this host's harness ELF."""
        nonce = secrets.randbits(32) | 1
        reply = self._transact(P.Type.HELLO, struct.pack("<I", nonce), self.settings.timeout_s,
                               restarts_ok=True)
        hello = P.Hello.parse(reply.payload)
        fw = elfmod.load(self.elf)
        problems = []
        if hello.version != P.PROTOCOL_VERSION:
            problems.append(f"protocol version {hello.version}, host speaks "
                            f"{P.PROTOCOL_VERSION}")
        if hello.board != self.board.id:
            problems.append(f"firmware built for {hello.board!r}, host expects {self.board.id!r}")
        if hello.job_size != self.contract.type(JOB_TYPE).size:
            problems.append(f"job descriptor of {hello.job_size} bytes, the ELF's DWARF says "
                            f"{self.contract.type(JOB_TYPE).size}")
        if hello.jobs_address != fw.symbol("atomsim_jobs"):
            problems.append("job array at another address than in the ELF")
        want = image_crc(self.elf, hello.image_start, hello.image_end)
        if hello.image_crc != want:
            problems.append(f"flash image CRC 0x{hello.image_crc:08X}, {self.elf.name} gives "
                            f"0x{want:08X} (flash it again)")
        if problems:
            raise BoardMismatch(f"the board on {self.port} does not run {self.elf}: "
                                + "; ".join(problems))
        self.hello, self._upload_crc, self._uploaded = hello, 0, None
        return hello

    # -- jobs ---------------------------------------------------------------------------------
    def run_cases(self, cases: list[KernelCall], repeats: int = 1, chain: bool = False,
                  on_run: Callable[[BoardRun], None] | None = None) -> list[BoardRun]:
        """Upload cases once, run them ``repeats`` times; every output CRC is checked.

        ``on_run`` sees each checked run as it arrives (to persist it at once).
        """
        if repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {repeats}")
        runs: list[BoardRun] = []
        resets = 0
        while len(runs) < repeats:
            try:
                if self.hello is None:
                    self.connect()
                if self._uploaded is None:
                    upload = place(cases, self.contract, self.hello, self.variant, chain)
                    self._upload(upload)
                runs.append(self._run(self._uploaded, cases))
                if on_run is not None:
                    on_run(runs[-1])
            except _Restarted:
                resets += 1
                self.stats["resets"] += 1
                self.hello, self._uploaded = None, None
                if resets > self.settings.max_resets:
                    raise BoardReset(self.port, resets) from None
        self._uploaded = None  # the next cases overwrite the arena
        return runs

    def run_case(self, case: KernelCall, repeats: int = 1,
                 on_run: Callable[[BoardRun], None] | None = None) -> list[BoardRun]:
        """One kernel, measured ``repeats`` times."""
        return self.run_cases([case], repeats, on_run=on_run)

    def read_output(self, address: int, size: int) -> bytes:
        """Read board RAM (an output) in frame-sized pieces."""
        if self.hello is None:
            self.connect()
        out = bytearray()
        step = self.hello.max_payload
        while len(out) < size:
            n = min(step, size - len(out))
            payload = struct.pack("<3I", self.hello.session, address + len(out), n)
            reply = self._transact(P.Type.READ, payload, self.settings.timeout_s)
            out += reply.payload
        return bytes(out)

    def measure(self, atom: Atom, repeats: int = 3) -> tuple[KernelCall, list[BoardRun]]:
        """An atom's deterministic call (the same data as the emulator's), measured."""
        case = registry.call_for_atom(atom)
        return case, self.run_case(case, repeats)

    def _upload(self, upload: Upload) -> None:
        step = min(self.settings.chunk_bytes, self.hello.max_payload - 8)
        # the board's upload CRC runs over every WRITE since HELLO (connect() zeroes ours)
        for addr, data in upload.writes:
            for off in range(0, len(data), step):
                chunk = struct.pack("<I", addr + off) + data[off:off + step]
                payload = struct.pack("<I", self.hello.session) + chunk
                reply = self._transact(P.Type.WRITE, payload, self.settings.timeout_s)
                self._upload_crc = P.crc32(chunk, self._upload_crc)
                if struct.unpack("<I", reply.payload[:4])[0] != self._upload_crc:
                    raise _Restarted()  # the board applied something else: start over
        self._uploaded = upload

    def _run(self, upload: Upload, cases: list[KernelCall]) -> BoardRun:
        payload = P.run_request(self.hello.session, self._upload_crc, list(upload.outputs))
        reply = self._transact(P.Type.RUN, payload, self.settings.run_timeout_s)
        result = P.Result.parse(reply.payload)
        if result.status != 0 or len(result.cycles) != len(cases):
            raise BoardRefused(f"kernel {cases[len(result.cycles) - 1].op} returned status "
                               f"{result.status} on the board after {len(result.cycles)} of "
                               f"{len(cases)} job(s)")
        for case, got, want in zip(cases, result.output_crcs, upload.expected_crcs,
                                   strict=True):
            if got != want:
                raise BoardComputedWrongly(f"{case.op} {case.in_dims}->{case.out_dims}", got,
                                           want)
        return BoardRun(result.cycles, result.total_cycles, result.output_crcs)

    # -- frames -------------------------------------------------------------------------------
    def _transact(self, type_: int, payload: bytes, timeout_s: float,
                  restarts_ok: bool = False) -> P.Frame:
        """Send a request, wait for its reply; retransmit with backoff on silence."""
        self._seq = self._seq % 255 + 1  # 1..255; 0 is the board's BOOT frame
        seq, frame = self._seq, P.encode(type_, self._seq, payload)
        wait, waited = timeout_s, 0.0
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            if attempt:
                self.stats["retransmits"] += 1
            self._write(frame)
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for reply in self._read(left):
                    if reply.type == P.Type.BOOT:
                        self.stats["boot_frames"] += 1
                        if not restarts_ok:
                            raise _Restarted()
                        continue
                    if reply.seq != seq:
                        continue  # a late reply to an earlier, retransmitted request
                    if reply.type == P.Type.ERROR:
                        err = P.ErrorReply.parse(reply.payload)
                        if err.code in (P.LinkError.SESSION, P.LinkError.UPLOAD_CRC):
                            raise _Restarted()
                        raise BoardRefused(err.describe())
                    if reply.type == type_ | 0x80:
                        return reply
            waited += wait
            wait *= self.settings.backoff
        raise BoardNotResponding(self.port, P.Type(type_).name, attempts, waited)

    def _write(self, data: bytes) -> None:
        try:
            self.serial.write(data)
            self.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise BoardDisconnected(self.port, str(exc)) from None

    def _read(self, timeout_s: float) -> list[P.Frame]:
        """Frames that arrive within ``timeout_s`` (returns as soon as some do)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.serial.timeout = max(0.0, min(0.05, deadline - time.monotonic()))
                data = self.serial.read(max(1, self.serial.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                raise BoardDisconnected(self.port, str(exc)) from None
            frames = self.decoder.feed(data) if data else []
            if frames or time.monotonic() >= deadline:
                return frames


def flash(elf: Path | str, unique_id: str | None = None) -> str:
    """Program the harness ELF with pyOCD when it is installed (extra ``board``).

    Returns what was done. Without pyOCD it programs nothing and says how to flash the ELF
    with another tool (STM32CubeProgrammer, st-flash, drag-and-drop of a .bin); AtomSim then
    only talks to the board over its port.
    """
    elf = Path(elf)
    try:
        from pyocd.core.helpers import ConnectHelper
        from pyocd.flash.file_programmer import FileProgrammer
    except ImportError:
        return (f"pyOCD is not installed (pip install 'atomsim[board]'): flash {elf} with your "
                "own tool (STM32CubeProgrammer, st-flash, OpenOCD), reset the board, then run "
                "again with --port")
    try:
        with ConnectHelper.session_with_chosen_probe(unique_id=unique_id, blocking=False) \
                as session:
            if session is None:
                raise FlashingFailed("pyOCD found no debug probe (is the board plugged in?)")
            FileProgrammer(session).program(str(elf))
            session.board.target.reset()
    except FlashingFailed:
        raise
    except Exception as exc:  # pyOCD raises many types; all mean "not flashed"
        raise FlashingFailed(f"pyOCD could not flash {elf}: {exc}") from exc
    return f"flashed {elf} with pyOCD"
