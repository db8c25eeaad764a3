"""A Renode ``Tag``: a named register range that reads its value and ignores writes."""

from __future__ import annotations


class Tag:
    """Not a Peripheral subclass: it has no register table, only a constant value."""

    def __init__(self, name: str, start: int, end: int, value: int):
        self.name, self.base, self.span, self.value = name, start, end - start + 1, value

    def read(self, offset: int, size: int) -> int:
        return (self.value >> ((offset & 3) * 8)) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        pass

    def idle_read(self, offset: int) -> bool:
        return False

    def reg_name(self, offset: int) -> str:
        return self.name
