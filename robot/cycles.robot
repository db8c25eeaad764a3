*** Settings ***
Documentation     The firmware's own DWT cycle counts, read over the UART, agree with the
...               emulator's count of the same run within explicit tolerances.
Resource          atomsim.resource
Test Teardown     Reset Emulation


*** Variables ***
# cyccnt: the marker snapshots and the CYCCNT reads around the workload differ only by the
# few instructions between them (8 to 11 cycles measured on the three boards).
${MARKER_TOLERANCE}    16
# cyccnt: CYCCNT is enabled in main, after the reset handler and the clock set-up (about
# 2.5k cycles on the H743), and read before the last report line is printed (about 0.4k).
${END_TOLERANCE}       4000


*** Test Cases ***
Should Report Matmul Cycles Within The Emulated Total On The STM32F412
    Bench Cycles Should Lie Within The Run    stm32f412

Should Report Matmul Cycles Within The Emulated Total On The STM32H743
    Bench Cycles Should Lie Within The Run    stm32h743

Should Count The Workload Like The Emulator On The STM32F412
    Cyccnt Should Match The Emulator    stm32f412

Should Count The Workload Like The Emulator On The STM32F746
    Cyccnt Should Match The Emulator    stm32f746

Should Count The Workload Like The Emulator On The STM32H743
    Cyccnt Should Match The Emulator    stm32h743


*** Keywords ***
Bench Cycles Should Lie Within The Run
    [Arguments]    ${board}
    Boot Example    bench    ${board}
    ${line}=    Wait For Line On Uart    @atomsim matmul_cycles=(\\d+)    treatAsRegex=true
    Wait For Line On Uart    bench: PASS
    ${result}=    Run Firmware Until Exit
    Run Should Have Passed    ${result}
    ${dwt}=    Convert To Integer    ${line.Groups[0]}
    Should Be True    0 < ${dwt} < ${result.cycles}
    ...    msg=DWT matmul cycles ${dwt} must be positive and below the run's ${result.cycles}
    # the 64x64x64 int8 matmul is most of the run, not a sliver of it
    Should Be True    ${dwt} > ${result.cycles} / 5
    ...    msg=DWT matmul cycles ${dwt} are implausibly few of the run's ${result.cycles}

Cyccnt Should Match The Emulator
    [Arguments]    ${board}
    Boot Example    cyccnt    ${board}
    ${work}=    Wait For Line On Uart    @atomsim work_cycles=(\\d+)    treatAsRegex=true
    ${end}=     Wait For Line On Uart    @atomsim cyccnt_end=(\\d+)     treatAsRegex=true
    ${result}=    Run Firmware Until Exit
    Run Should Have Passed    ${result}
    ${between}=    Cycles Between Markers
    ${gap}=    Evaluate    abs(${between} - ${work.Groups[0]})
    Should Be True    ${gap} <= ${MARKER_TOLERANCE}
    ...    msg=DWT says ${work.Groups[0]} cycles, the markers ${between}: ${gap} apart
    ${total}=    Emulated Cycles
    Should Be Equal As Integers    ${total}    ${result.cycles}
    ${untimed}=    Evaluate    ${total} - ${end.Groups[0]}
    Should Be True    0 < ${untimed} <= ${END_TOLERANCE}
    ...    msg=CYCCNT ends at ${end.Groups[0]}, the run took ${total} cycles: ${untimed} apart
