"""Reading firmware ELF files (pyelftools): loadable segments, symbols and memory figures."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from atomsim.core.errors import ElfError


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment: ``data`` goes at ``paddr`` (its load address); ``memsz`` ≥ len(data)."""

    paddr: int
    vaddr: int
    data: bytes
    memsz: int


@dataclass(frozen=True)
class SizeReport:
    """The Berkeley figures that ``arm-none-eabi-size`` prints, computed the same way."""

    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        """Bytes placed in flash: vectors, code, read-only data and .data initialisers."""
        return self.text + self.data

    @property
    def static_ram(self) -> int:
        """.data + .bss."""
        return self.data + self.bss


@dataclass(frozen=True)
class Firmware:
    """A loaded ELF: what the emulator needs, with no file handle kept open."""

    path: Path
    sha256: str
    entry: int
    segments: tuple[Segment, ...]
    symbols: dict[str, int]
    sizes: SizeReport

    def symbol(self, name: str) -> int | None:
        """Address of a global or local symbol, or None."""
        return self.symbols.get(name)


def load(path: str | Path) -> Firmware:
    """Parse and validate an ARM ELF; raise ElfError naming the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ElfError(f"cannot read firmware {path}: {exc.strerror}") from None
    if raw[:4] != b"\x7fELF":
        raise ElfError(f"{path} is not an ELF file (no ELF magic)")
    try:
        elf = ELFFile(io.BytesIO(raw))
        if elf.elfclass != 32 or not elf.little_endian:
            raise ElfError(f"{path} is not a 32-bit little-endian ELF")
        if elf["e_machine"] != "EM_ARM":
            raise ElfError(f"{path} is for {elf['e_machine']}, not ARM (EM_ARM)")
        segments = []
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            data = seg.data()
            if len(data) != seg["p_filesz"]:
                raise ElfError(f"{path}: a PT_LOAD segment is truncated "
                               f"({len(data)} of {seg['p_filesz']} bytes)")
            segments.append(Segment(seg["p_paddr"], seg["p_vaddr"], data, seg["p_memsz"]))
        if not segments:
            raise ElfError(f"{path} has no loadable segment")
        symbols: dict[str, int] = {}
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            for sym in symtab.iter_symbols():
                if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT",
                                                            "STT_NOTYPE"):
                    symbols.setdefault(sym.name, sym["st_value"])
        text = data_ = bss = 0
        for sec in elf.iter_sections():
            flags = sec["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            size = sec["sh_size"]
            if flags & SH_FLAGS.SHF_EXECINSTR or not flags & SH_FLAGS.SHF_WRITE:
                text += size
            elif sec["sh_type"] != "SHT_NOBITS":
                data_ += size
            else:
                bss += size
        entry = elf["e_entry"]
    except ElfError:
        raise
    except (_PyElfError, ValueError, KeyError, IndexError, AssertionError) as exc:
        raise ElfError(f"{path} is a corrupt ELF file: {exc}") from None
    return Firmware(path, hashlib.sha256(raw).hexdigest(), entry, tuple(segments), symbols,
                    SizeReport(text, data_, bss))
