"""Peripheral models, looked up by the Renode type (or Python-peripheral script) they stand for.

Adding a peripheral model: write a small class in this package and add one entry here.
"""

from __future__ import annotations

from pathlib import PurePath

from atomsim.emulator.peripherals.base import Peripheral, UnmodelledRegister
from atomsim.emulator.peripherals.clocks import (
    FlashIfF4,
    FlashIfH7,
    PwrF4,
    PwrF7,
    PwrH7,
    RccF4,
    RccH7,
)
from atomsim.emulator.peripherals.dwt import Dwt
from atomsim.emulator.peripherals.scs import SystemControlSpace
from atomsim.emulator.peripherals.tag import Tag
from atomsim.emulator.peripherals.usart import UsartF4, UsartF7

MODELS: dict[str, type[Peripheral]] = {
    "IRQControllers.NVIC": SystemControlSpace,
    "Miscellaneous.DWT": Dwt,
    "UART.STM32_UART": UsartF4,
    "UART.STM32F7_USART": UsartF7,
    "Miscellaneous.STM32F4_RCC": RccF4,
    "Miscellaneous.STM32H7_RCC": RccH7,
    "Miscellaneous.STM32_PWR": PwrF4,
    "MTD.STM32F4_FlashController": FlashIfF4,
    "MTD.STM32H7_FlashController": FlashIfH7,
    # Renode has no model for these; its platform files use Python peripherals (our scripts in
    # renode_platforms/pydev/ give Renode the same behaviour).
    "Python.PythonPeripheral:stm32f7_pwr.py": PwrF7,
    "Python.PythonPeripheral:stm32h7_pwr.py": PwrH7,
}


def model_key(decl) -> str:
    """The MODELS key of a declaration: its type, plus the script name for Python peripherals."""
    if decl.type == "Python.PythonPeripheral":
        return f"{decl.type}:{PurePath(str(decl.properties.get('filename', ''))).name}"
    return decl.type


__all__ = ["MODELS", "Peripheral", "Tag", "UnmodelledRegister", "model_key"]
