"""Named errors. Each user-facing failure has its own type, message and CLI exit code.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; it never shows a traceback
for an ``AtomSimError``. Firmware outcomes (faults, timeouts) are also carried as
``RunResult.status`` so that library users can treat them as results.
"""

from __future__ import annotations


class AtomSimError(Exception):
    """Base class: a problem with the user's input, firmware or environment."""

    exit_code = 2
    status = "error"


class ConfigError(AtomSimError):
    """A malformed spec, platform file, board entry or command-line value."""

    exit_code = 2
    status = "config-error"


class ElfError(AtomSimError):
    """The file is not a loadable 32-bit little-endian ARM ELF."""

    exit_code = 3
    status = "bad-elf"


class MissingVectorTable(ElfError):
    """The ELF has no usable Cortex-M vector table: no vector-table symbol, and the words where
    one would be do not hold an initial stack pointer and a reset vector inside the board's
    memories."""

    status = "no-vector-table"


class DoesNotFit(AtomSimError):
    """An image or a model needs more of a memory region than the board has."""

    exit_code = 4
    status = "does-not-fit"

    def __init__(self, region: str, needed: int, available: int, what: str = "image"):
        self.region, self.needed, self.available = region, needed, available
        super().__init__(
            f"{what} needs {needed} bytes of {region}, the board has {available} "
            f"({needed - available} bytes over)"
        )


class ToolchainError(AtomSimError):
    """arm-none-eabi-gcc (or the host C compiler) is missing or failed."""

    exit_code = 5
    status = "build-error"


class FirmwareError(AtomSimError):
    """Base for what the firmware did wrong while it ran. Carries the PC."""

    exit_code = 10
    status = "firmware-error"

    def __init__(self, message: str, pc: int | None = None):
        self.pc = pc
        super().__init__(message if pc is None else f"{message} (PC=0x{pc:08X})")


class HardFault(FirmwareError):
    """The core took a fault exception (halted on HardFault entry, like a vector catch)."""

    exit_code = 11
    status = "fault"

    def __init__(self, reason: str, pc: int, cfsr: int, hfsr: int,
                 bfar: int | None = None, mmfar: int | None = None):
        self.reason, self.cfsr, self.hfsr, self.bfar, self.mmfar = reason, cfsr, hfsr, bfar, mmfar
        parts = [f"hard fault: {reason}", f"CFSR=0x{cfsr:08X}", f"HFSR=0x{hfsr:08X}"]
        if bfar is not None:
            parts.append(f"BFAR=0x{bfar:08X}")
        if mmfar is not None:
            parts.append(f"MMFAR=0x{mmfar:08X}")
        super().__init__(", ".join(parts), pc)


class UnmodelledAccess(FirmwareError):
    """An access to an address that the platform does not model (never silent RAM)."""

    exit_code = 12
    status = "unmodelled-access"

    def __init__(self, address: int, access: str, size: int, pc: int, value: int | None = None):
        self.address, self.access, self.size = address, access, size
        what = f"{access} of {size} byte(s) at 0x{address:08X}"
        if value is not None:
            what += f" (value 0x{value:X})"
        super().__init__(f"unmodelled access: {what}, no memory or peripheral there", pc)


class StackOverflow(FirmwareError):
    """The stack grew into the guard below it."""

    exit_code = 13
    status = "stack-overflow"

    def __init__(self, address: int, stack_bottom: int, pc: int):
        self.address, self.stack_bottom = address, stack_bottom
        super().__init__(
            f"stack overflow: access at 0x{address:08X} is below the stack bottom "
            f"0x{stack_bottom:08X} (in the guard)", pc)


class Timeout(FirmwareError):
    """The firmware did not stop within its instruction budget."""

    exit_code = 14
    status = "timeout"

    def __init__(self, budget: int, pc: int):
        self.budget = budget
        super().__init__(f"timeout: firmware still running after {budget} instructions", pc)


class SleepingNoWakeup(FirmwareError):
    """The core sleeps (WFI/WFE) and nothing can ever wake it: no enabled interrupt that
    could preempt, SysTick off, no input the run can deliver."""

    exit_code = 16
    status = "sleeping"

    def __init__(self, detail: str, pc: int):
        self.detail = detail
        super().__init__(f"sleeping with no wake-up source: {detail}", pc)


class FirmwareFailure(FirmwareError):
    """The firmware itself reported failure (non-zero exit code or a FAIL report)."""

    exit_code = 15
    status = "failed"

    def __init__(self, code: int, message: str, pc: int | None = None):
        self.code = code
        super().__init__(f"firmware reported failure (exit code {code}): {message}", pc)
