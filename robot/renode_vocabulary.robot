*** Settings ***
Documentation     Written only in Renode's vocabulary: the same file runs on Renode under
...               renode-test and on AtomSim through ``python -m atomsim.robot.run``, which
...               passes RENODEKEYWORDS (robot/atomsim-renode-keywords.resource) and BIN (the
...               hello example built for the STM32F746).
Suite Setup       Setup
Suite Teardown    Teardown
Test Teardown     Test Teardown
Resource          ${RENODEKEYWORDS}


*** Variables ***
${UART}           sysbus.usart3
${PLATFORM}       @renode_platforms/stm32f746.repl
${SCRIPT}         @renode_platforms/stm32f746.resc


*** Keywords ***
Create Machine
    Execute Command    mach create
    # Renode's RCC model needs an RTC; AtomSim models none (see the board's .resc)
    Execute Command    machine LoadPlatformDescriptionFromString "rtc: Timers.STM32F4_RTC @ sysbus 0x40002800"
    Execute Command    machine LoadPlatformDescription ${PLATFORM}
    Execute Command    sysbus LoadELF @${BIN}
    Execute Command    sysbus.cpu VectorTableOffset 0x08000000


*** Test Cases ***
Should Print Hello
    Create Machine
    Create Terminal Tester    ${UART}
    Start Emulation
    Wait For Line On Uart    Hello

Should Print Hello From The Board Script
    Execute Command    $bin=@${BIN}
    Execute Command    include ${SCRIPT}
    Create Terminal Tester    ${UART}    timeout=1
    Start Emulation
    ${line}=    Wait For Line On Uart    Hello from (STM32\\w+)!    treatAsRegex=true
    Should Be Equal    ${line.groups[0]}    STM32F746

Should Leave The Console Enabled
    Create Machine
    Create Terminal Tester    ${UART}
    Start Emulation
    Wait For Line On Uart    Hello
    # USART3 CR1 after the runtime's set-up: UE | RE | TE
    ${cr1}=    Execute Command    sysbus ReadDoubleWord 0x40004800
    Should Be Equal As Integers    ${cr1}    0x0000000D
