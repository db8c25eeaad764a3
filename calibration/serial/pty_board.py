"""A "board" for tests and demos: AtomSim's emulator serving the serial protocol behind a
pseudo-terminal.

:class:`PtyBoard` runs the harness ELF on :class:`~atomsim.emulator.machine.Machine` in a
thread and bridges its console USART to the master side of ``os.openpty()``; the host opens the
slave path with pyserial exactly as it would open ``/dev/ttyACM0``. Emulated time advances in
slices (``Machine.run(max_cycles=...)`` pauses exactly and resumes); while the firmware waits
for input the bridge sleeps on the pty instead of spinning.

Two things make it unlike the emulator on purpose, both explicit:

* **Injected timing** (:class:`InjectedTiming`): the cycles in each RUN reply are rewritten
  to ``scale * cycles + per_call + per_weight_byte * weight bytes`` (rounded), so a calibration
  fit has known factors to recover. This is a transformation of the reported numbers, not a
  model of any real board.
* **Faults** (:class:`Faults`, seeded): bytes dropped or corrupted in either direction,
  garbage before the first frame on each line, a reset after the board took a RUN request
  (its kernel running), the pty closed, silence, and a board that computes wrongly.
"""

from __future__ import annotations

import os
import random
import select
import struct
import threading
import tty
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile

from atomsim.boards import Board
from atomsim.emulator.machine import Machine
from atomsim.nn import registry
from atomsim.target.contract import read_contract
from calibration.serial import protocol as P
from calibration.serial.host import JOB_TYPE, WEIGHT_OPS, weight_bytes

SLICE_CYCLES = 2_000_000  # emulated time per step between looks at the pty
IDLE_WAIT_S = 0.05  # how long the bridge sleeps on the pty while the firmware waits for input
RESET_DELAY_CYCLES = 500  # a reset 'mid-job' comes this many cycles into the kernel


@dataclass(frozen=True)
class InjectedTiming:
    """The pty board's deliberate timing difference: what a fit must recover."""

    scale: float = 1.25  # on the emulated kernel cycles (e.g. extra wait states)
    per_call: float = 3000.0  # cycles added per kernel call (e.g. a driver's overhead)
    per_weight_byte: float = 0.5  # cycles per byte of weights + bias (Atom.flash_bytes)

    def apply(self, cycles: int, weight_bytes: int) -> int:
        """The cycles the pty board reports for a kernel the emulator counted ``cycles`` for."""
        return int(round(self.scale * cycles + self.per_call
                         + self.per_weight_byte * weight_bytes))


@dataclass(frozen=True)
class Faults:
    """Seeded faults. Probabilities are per byte; counts of requests start at 1."""

    seed: int = 0
    drop_to_board: float = 0.0
    corrupt_to_board: float = 0.0
    drop_to_host: float = 0.0
    corrupt_to_host: float = 0.0
    garbage: int = 0  # random bytes on each line before the first frame on it
    reset_at_runs: tuple[int, ...] = ()  # reset while the n-th RUN's kernel runs
    disconnect_at_run: int = 0  # close the pty when the n-th RUN arrives (0: never)
    silent: bool = False  # the board never answers
    wrong_output: bool = False  # a byte of the first job's input altered as each RUN arrives


@dataclass
class BoardLog:
    """What the pty board saw (for tests and for the demo's account of the faults)."""

    runs: int = 0
    resets: int = 0
    dropped: int = 0
    corrupted: int = 0
    base_cycles: list[int] = field(default_factory=list)  # emulated cycles per reported job
    errors: list[str] = field(default_factory=list)


class PtyBoard:
    """The emulator with the harness firmware, its console on a pseudo-terminal.

    Use as a context manager; ``port`` is the path to open with pyserial.
    """

    def __init__(self, board: Board, elf: Path | str, timing: InjectedTiming | None = None,
                 faults: Faults | None = None):
        self.board, self.elf = board, Path(elf)
        self.timing = timing if timing is not None else InjectedTiming()
        self.faults = faults or Faults()
        self.log = BoardLog()
        self._rng = random.Random(self.faults.seed)
        self.machine = Machine(board)
        self.firmware = self.machine.load(self.elf)
        contract = read_contract(self.elf)
        job_t = contract.type(JOB_TYPE)
        self._job_size = job_t.size
        self._op_at = job_t.member("op").offset
        self._filter_dims_at = job_t.member("filter_dims").offset
        self._input_at = job_t.member("input").offset
        self._op_names = {contract.enumerator(registry.operator(op).c_id): op
                          for op in WEIGHT_OPS}
        self._out_dims_at = job_t.member("out_dims").offset
        self._jobs = self.firmware.symbol("atomsim_jobs")
        self._getc = _function_range(self.elf, "atomsim_getc")
        self._console = board.console
        self._tx = bytearray()
        self.machine.uart_listeners.append(self._on_tx)
        self._from_board = P.Decoder(max_payload=0xFFFF)
        self._to_board = P.Decoder(max_payload=0xFFFF)
        self._reset_armed = False
        self._host_spoke = False
        self._garbage_sent = False
        self._disconnected = False
        self._stop = threading.Event()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline between the two ends
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name=f"pty-board {self.port}",
                                        daemon=True)

    def __enter__(self) -> PtyBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start emulating; the firmware sends its BOOT frame once it runs."""
        self._thread.start()

    def close(self) -> None:
        """Stop the board and close both ends of the pseudo-terminal."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._close_fds()
        self.machine.close()

    def disconnect(self) -> None:
        """Pull the cable: close the pty's master side (the host's reads then fail)."""
        self._disconnected = True
        self._close_fds()

    def _close_fds(self) -> None:
        for name in ("master", "_slave"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- the emulation loop ------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and not self._disconnected:
                self._step()
        except Exception as exc:  # the thread must not die silently: tests read the log
            self.log.errors.append(f"{type(exc).__name__}: {exc}")

    def _step(self) -> None:
        m = self.machine
        if self._reset_armed:
            self._reset_mid_job()
            return
        result = m.run(max_cycles=SLICE_CYCLES)
        if result.status != "running":
            self.log.errors.append(f"firmware stopped: {result.status} {result.end_reason}")
            self._stop.set()
            return
        self._flush_tx()
        waiting = self._getc[0] <= m.pc < self._getc[1]
        if self.master is None:
            return
        ready, _, _ = select.select([self.master], [], [], IDLE_WAIT_S if waiting else 0)
        if ready:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""
            self._deliver(data)

    def _reset_mid_job(self) -> None:
        """Press reset once the firmware has taken the RUN request and its kernel runs."""
        m = self.machine
        while m.peripherals[self._console].rx:  # the request is still being received
            m.run(max_cycles=256)
        m.run(max_cycles=RESET_DELAY_CYCLES)
        self._reset_armed = False
        self.log.resets += 1
        m.reset()  # the NRST button: RAM keeps its contents, the firmware starts over
        self._tx.clear()

    def _deliver(self, data: bytes) -> None:
        """Bytes from the host, through the faults, into the USART's RX queue."""
        if not self._host_spoke and self.faults.garbage:
            data = self._noise() + data
        self._host_spoke = True
        data = self._damage(data, self.faults.drop_to_board, self.faults.corrupt_to_board)
        for frame in self._to_board.feed(data):
            if frame.type == P.Type.RUN:
                self.log.runs += 1
                if self.log.runs == self.faults.disconnect_at_run:
                    self.disconnect()
                    return
                if self.log.runs in self.faults.reset_at_runs:
                    self._reset_armed = True
                if self.faults.wrong_output:
                    self._spoil_input()
        self.machine.uart_write(self._console, data)

    def _spoil_input(self) -> None:
        """A board that computes wrongly: one input byte differs from what was uploaded."""
        desc = self.machine.read_memory(self._jobs, self._job_size)
        addr = struct.unpack_from("<I", desc, self._input_at)[0]
        byte = self.machine.read_memory(addr, 1)[0]
        self.machine.write_memory(addr, bytes([byte ^ 0x80]))

    def _noise(self) -> bytes:
        return bytes(self._rng.randrange(256) for _ in range(self.faults.garbage))

    def _on_tx(self, name: str, byte: int) -> None:
        if name == self._console:
            self._tx.append(byte)

    def _flush_tx(self) -> None:
        """Frames from the firmware, RUN replies rewritten, through the faults, to the host."""
        if not self._tx:
            return
        data, out = bytes(self._tx), bytearray()
        self._tx.clear()
        for frame in self._from_board.feed(data):
            payload = frame.payload
            if frame.type == P.Type.RUN_REPLY:
                payload = self._rewrite_result(P.Result.parse(payload)).encode()
            out += P.encode(frame.type, frame.seq, payload)
        if self._host_spoke and not self._garbage_sent and self.faults.garbage:
            out[:0] = self._noise()  # noise before the first frame the host reads
            self._garbage_sent = True
        if not self.faults.silent:
            self._send(self._damage(bytes(out), self.faults.drop_to_host,
                                    self.faults.corrupt_to_host))

    def _rewrite_result(self, result: P.Result) -> P.Result:
        """Apply the injected timing to each job's cycles (and the wrong-output fault)."""
        m, cycles = self.machine, []
        for i, c in enumerate(result.cycles):
            desc = m.read_memory(self._jobs + i * self._job_size, self._job_size)
            op = struct.unpack_from("<I", desc, self._op_at)[0]
            weights = weight_bytes(struct.unpack_from("<4i", desc, self._filter_dims_at),
                                   struct.unpack_from("<4i", desc, self._out_dims_at),
                                   self._op_names.get(op, ""))
            self.log.base_cycles.append(c)
            cycles.append(self.timing.apply(c, weights))
        return P.Result(result.status, sum(cycles), tuple(cycles), result.output_crcs)

    def _damage(self, data: bytes, drop: float, corrupt: float) -> bytes:
        if not (drop or corrupt):
            return data
        out = bytearray()
        for b in data:
            r = self._rng.random()
            if r < drop:
                self.log.dropped += 1
                continue
            if r < drop + corrupt:
                self.log.corrupted += 1
                b ^= 1 << self._rng.randrange(8)
            out.append(b)
        return bytes(out)

    def _send(self, data: bytes) -> None:
        if self.master is None or not data:
            return
        try:
            os.write(self.master, data)
        except OSError as exc:
            self.log.errors.append(f"pty write failed: {exc}")


def _function_range(elf: Path, name: str) -> tuple[int, int]:
    """[start, end) of a function in the ELF (Thumb bit cleared)."""
    with open(elf, "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        for sym in symtab.get_symbol_by_name(name) or ():
            start = sym["st_value"] & ~1
            return start, start + max(sym["st_size"], 2)
    raise ValueError(f"{elf} has no function {name}")


def main(argv: list[str] | None = None) -> int:
    """Serve a pty board in this process until interrupted; print its port first.

    ``python -m calibration.serial.pty_board --board stm32h743`` — then point
    ``atomsim calibrate --port`` (or any pyserial program) at the printed path.
    """
    import argparse
    import signal

    from atomsim.boards import get_board
    from atomsim.profiling.profiler import DEFAULT_VARIANT, harness_elf

    t, f = InjectedTiming(), Faults()
    ap = argparse.ArgumentParser(prog="python -m calibration.serial.pty_board",
                                 description=main.__doc__.splitlines()[0])
    ap.add_argument("--board", default="stm32h743")
    ap.add_argument("--variant", default=DEFAULT_VARIANT)
    ap.add_argument("--scale", type=float, default=t.scale)
    ap.add_argument("--per-call", type=float, default=t.per_call)
    ap.add_argument("--per-weight-byte", type=float, default=t.per_weight_byte)
    ap.add_argument("--seed", type=int, default=f.seed)
    ap.add_argument("--drop", type=float, default=0.0, help="per-byte drop rate, both ways")
    ap.add_argument("--corrupt", type=float, default=0.0, help="per-byte corruption rate")
    args = ap.parse_args(argv)
    board = get_board(args.board)
    elf = harness_elf(board, args.variant)
    timing = InjectedTiming(args.scale, args.per_call, args.per_weight_byte)
    faults = Faults(seed=args.seed, drop_to_board=args.drop, drop_to_host=args.drop,
                    corrupt_to_board=args.corrupt, corrupt_to_host=args.corrupt)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with PtyBoard(board, elf, timing, faults) as pty:
        print(pty.port, flush=True)
        try:
            while not stop.wait(0.5) and pty._thread.is_alive():
                pass
        except KeyboardInterrupt:
            pass
    for line in pty.log.errors:
        print(f"pty board: {line}", flush=True)
    return 1 if pty.log.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
