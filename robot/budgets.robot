*** Settings ***
Documentation     Memory and time budgets of a run: real budgets pass, too small ones fail
...               with the measured figure.
Resource          atomsim.resource
Test Teardown     Reset Emulation


*** Variables ***
# bench: two 4 KiB int8 operands and a 16 KiB int32 result (24 KiB static) plus stack
${BENCH_RAM_BUDGET}       32768
${BENCH_FLASH_BUDGET}     8192
# 60 ms at the STM32F412's 100 MHz
${BENCH_CYCLE_BUDGET}     6000000


*** Test Cases ***
Should Keep The Bench Within Its Budgets On The STM32F412
    ${result}=    Run Example To The End    bench    stm32f412
    Run Should Have Passed    ${result}
    Peak RAM Should Be Below    ${BENCH_RAM_BUDGET}
    Flash Should Be Below       ${BENCH_FLASH_BUDGET}
    Cycles Should Be Below      ${BENCH_CYCLE_BUDGET}

Should Fail A Budget The Bench Exceeds
    Run Example To The End    bench    stm32f412
    Run Keyword And Expect Error    *peak RAM * bytes (static * + stack * + heap *) of bench.elf on stm32f412 is not below the budget of 16384 bytes
    ...    Peak RAM Should Be Below    16384
    Run Keyword And Expect Error    flash * bytes (text + rodata + data image) of bench.elf on stm32f412 is not below the budget of 1024 bytes
    ...    Flash Should Be Below    1024
    Run Keyword And Expect Error    *run time * cycles (* ms at 100 MHz) of bench.elf on stm32f412 is not below the budget of 1000000 cycles*
    ...    Cycles Should Be Below    1000000

Should Refuse A Budget Before The Run Has Ended
    Boot Example    bench    stm32f412
    Run Keyword And Expect Error    *has not ended yet*Run Firmware Until Exit*
    ...    Cycles Should Be Below    ${BENCH_CYCLE_BUDGET}
