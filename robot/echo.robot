*** Settings ***
Documentation     Lines written to the console's RX line come back from the echo example.
Resource          atomsim.resource
Test Teardown     Reset Emulation


*** Test Cases ***
Should Echo A Line Written To The UART
    Boot Example    echo    stm32f412
    Wait For Line On Uart    echo ready
    # Renode's Write Line To Uart ends the line with a carriage return; the firmware's
    # readline ends a line at CR or LF. Its echo is prefixed, so wait for that line instead.
    Write Line To Uart    hello atomsim    waitForEcho=false
    ${line}=    Wait For Line On Uart    echo: (.*)$    treatAsRegex=true
    Should Be Equal    ${line.Groups[0]}    hello atomsim

Should Echo Lines In Order And Stop On Quit
    Boot Example    echo    stm32f412
    Wait For Line On Uart    echo ready
    Write To Uart    first\nsecond\n
    Wait For Line On Uart    echo: first     matchNextLine=true
    Wait For Line On Uart    echo: second    matchNextLine=true
    Write To Uart    quit\n
    Should Not Be On Uart    echo: quit    timeout=0.01
    ${result}=    Run Firmware Until Exit
    Run Should Have Passed    ${result}

Should Not Echo Before A Line Ends
    Boot Example    echo    stm32f412
    Wait For Line On Uart    echo ready
    Write To Uart    partial
    Should Not Be On Uart    echo:    timeout=0.005
    Write To Uart    \n
    Wait For Line On Uart    echo: partial
