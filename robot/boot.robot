*** Settings ***
Documentation     Every board boots the hello example and prints its chip's name on the console.
Resource          atomsim.resource
Test Teardown     Reset Emulation
Test Template     Hello Should Be Printed


*** Test Cases ***                          BOARD        CHIP
Should Print Hello On The STM32F412         stm32f412    STM32F412
Should Print Hello On The STM32F746         stm32f746    STM32F746
Should Print Hello On The STM32H743         stm32h743    STM32H743


*** Keywords ***
Hello Should Be Printed
    [Arguments]    ${board}    ${chip}
    Boot Example    hello    ${board}
    Start Emulation
    ${line}=    Wait For Line On Uart    Hello from (\\w+)!    treatAsRegex=true
    Should Be Equal    ${line.Groups[0]}    ${chip}
    Should Not Be On Uart    Hello
    ${result}=    Run Firmware Until Exit
    Run Should Have Passed    ${result}
