*** Settings ***
Documentation     Faults and accesses to unmodelled addresses end a run with a named error
...               that carries the address.
Resource          atomsim.resource
Test Teardown     Reset Emulation


*** Test Cases ***
Should Report A Hard Fault With The Bus Error Address
    Boot Example    fault    stm32f746
    Wait For Line On Uart    about to read 0x60000000
    Run Firmware Until Exit
    Fault Should Be    HardFault    0x60000000
    Fault Should Be    fault    0x6000_0000

Should Fail A Wait At Once When The Firmware Faults
    Boot Example    fault    stm32f412
    Run Keyword And Expect Error
    ...    *the firmware stopped with fault: hard fault: bus error on read at 0x60000000*about to read 0x60000000*
    ...    Wait For Line On Uart    never printed    timeout=5

Should Report An Unmodelled Access With Its Address
    Boot Example    unmodelled    stm32h743
    Wait For Line On Uart    configuring SPI1
    Should Not Be On Uart    SPI1 configured
    Run Firmware Until Exit
    Fault Should Be    UnmodelledAccess    0x40013000
    Fault Should Be    unmodelled-access

Should Not Mistake One Fault For Another
    Boot Example    unmodelled    stm32f412
    Run Firmware Until Exit
    Run Keyword And Expect Error    *expected the run to end in HardFault*unmodelled-access*
    ...    Fault Should Be    HardFault
    Run Keyword And Expect Error    *at 0x40013000, expected 0x40013004*
    ...    Fault Should Be    UnmodelledAccess    0x40013004

Should Not Report A Fault For A Clean Run
    Boot Example    hello    stm32f412
    Run Firmware Until Exit
    Run Keyword And Expect Error    *expected the run to end in HardFault*no fault*
    ...    Fault Should Be    HardFault
