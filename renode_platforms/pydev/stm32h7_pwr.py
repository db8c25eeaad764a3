# ruff: noqa: F821 -- `request` is supplied by Renode's Python.PythonPeripheral
"""STM32H7 PWR (0x58024800) for Renode, which has no model of it. IronPython 2.7 syntax.

Registers are plain read/write words except the ready flags that supply and voltage-scaling
setup polls (HAL-H7, bit positions CMSIS-H7; STM32-FACTS §4 "H7, PWR"):
- CSR1.ACTVOSRDY (bit 13) always reads 1 (HAL_PWREx_ConfigSupply waits for it);
- D3CR.VOSRDY (bit 13) always reads 1 (voltage-scaling setup waits for it); D3CR.VOS
  (bits 15:14) is read/write with reset 0x4000 (SVD);
- CR3 is read/write with reset 0x6 (LDOEN | SCUEN, SVD).
AtomSim's emulator models the same behaviour in its own PWR model; tests/test_platforms.py
runs this script against both spellings of Renode's request object.
"""

CSR1 = 0x04
CR3 = 0x0C
D3CR = 0x18
CR3_RESET = 0x6
D3CR_RESET = 0x4000
ACTVOSRDY = 1 << 13
VOSRDY = 1 << 13


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
    registers = {CR3: CR3_RESET, D3CR: D3CR_RESET}
elif request_field("isWrite"):
    registers[request_field("offset")] = request_field("value") & 0xFFFFFFFF
elif request_field("isRead"):
    offset = request_field("offset")
    value = registers.get(offset, 0)
    if offset == CSR1:
        value |= ACTVOSRDY
    elif offset == D3CR:
        value |= VOSRDY
    answer(value)
