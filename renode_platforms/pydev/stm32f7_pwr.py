# ruff: noqa: F821 -- `request` is supplied by Renode's Python.PythonPeripheral
"""STM32F7 PWR (0x40007000) for Renode, which has no model of it. IronPython 2.7 syntax.

Registers are plain read/write words except the ready flags that clock setup polls
(HAL-F7, bit positions CMSIS-F7; STM32-FACTS §4 "F7 over-drive"):
- CSR1.ODRDY (bit 16) follows CR1.ODEN (bit 16);
- CSR1.ODSWRDY (bit 17) follows CR1.ODSWEN (bit 17);
- CSR1.VOSRDY (bit 14) always reads 1.
CR1 resets to 0x0000C000 (SVD STM32F746, STM32-FACTS §4). AtomSim's emulator models the same
behaviour in its own PWR model; tests/test_platforms.py runs this script against both
spellings of Renode's request object.
"""

CR1 = 0x00
CSR1 = 0x04
CR1_RESET = 0x0000C000
VOSRDY = 1 << 14
OD_FLAGS = (1 << 16) | (1 << 17)  # ODEN/ODRDY and ODSWEN/ODSWRDY share bit positions


def request_field(name):
    """Read a request attribute; newer Renode spells them IsInit/Offset, older isInit/offset."""
    capitalised = name[0].upper() + name[1:]
    if hasattr(request, capitalised):
        return getattr(request, capitalised)
    return getattr(request, name)


def answer(value):
    """Return a read value through whichever spelling this Renode uses."""
    if hasattr(request, "Value"):
        request.Value = value
    else:
        request.value = value


if request_field("isInit"):
    registers = {CR1: CR1_RESET}
elif request_field("isWrite"):
    registers[request_field("offset")] = request_field("value") & 0xFFFFFFFF
elif request_field("isRead"):
    offset = request_field("offset")
    value = registers.get(offset, 0)
    if offset == CSR1:
        enables = registers.get(CR1, CR1_RESET) & OD_FLAGS
        value = (value & ~OD_FLAGS) | enables | VOSRDY
    answer(value)
