"""Python side of the native single-instruction alignment checks (``native/sitecheck.c``).

Compiled once with the host C compiler against the unicorn wheel's headers and library, cached
under the build directory by content hash (as the block counter is), loaded with ctypes.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import unicorn

from atomsim.emulator.counter import compile_native

_SOURCE = Path(__file__).with_name("native") / "sitecheck.c"


class SiteState(ctypes.Structure):
    """Mirrors ``asc_state_t``: the site that would fault, and its base register's value."""

    _fields_ = [("fault_addr", ctypes.c_uint32), ("fault_base", ctypes.c_uint32)]


def _library_path() -> Path:
    return compile_native(_SOURCE, "sitecheck")


_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        lib = ctypes.CDLL(str(_library_path()))
        lib.asc_add.restype = ctypes.c_void_p
        lib.asc_add.argtypes = [ctypes.c_void_p, ctypes.POINTER(SiteState), ctypes.c_uint32,
                                ctypes.c_int, ctypes.c_int]
        lib.asc_del.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        _LIB = lib
    return _LIB


class SiteChecks:
    """Native code hooks, one per instruction address, on one Unicorn engine."""

    def __init__(self, uc: unicorn.Uc):
        self._uc = uc
        self.state = SiteState()
        self._sites: dict[int, int] = {}  # address -> native site pointer

    def __contains__(self, address: int) -> bool:
        return address in self._sites

    def add(self, address: int, reg: int, cond: int) -> None:
        """Check ``reg`` is word-aligned before the instruction at ``address`` (if its ARM
        condition ``cond``, 14 = always, passes)."""
        site = _lib().asc_add(self._uc._uch, ctypes.byref(self.state), address, reg, cond)
        if not site:
            raise RuntimeError(f"uc_hook_add failed for the site at 0x{address:08X}")
        self._sites[address] = site

    def clear(self) -> None:
        """Remove every site hook."""
        for site in self._sites.values():
            _lib().asc_del(self._uc._uch, site)
        self._sites.clear()
        self.state.fault_addr = self.state.fault_base = 0

    def take_fault(self) -> tuple[int, int] | None:
        """(site, base value) if a site stopped the run; clears it."""
        if not self.state.fault_addr:
            return None
        out = (self.state.fault_addr, self.state.fault_base)
        self.state.fault_addr = self.state.fault_base = 0
        return out
