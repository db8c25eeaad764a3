*** Settings ***
Documentation     Whole networks on the emulated boards: an MLPerf Tiny model within its
...               budgets and bit-exact, a budget it breaks, and a network too big for a board.
Library           OperatingSystem
Library           atomsim.robot.network.NetworkLibrary


*** Variables ***
${KWS}            ${CURDIR}/../../shared/data/tflite/kws_ref_model.tflite
${MCUNET_512}     ${CURDIR}/../../shared/data/mcunet-configs/mcunet-512kb-2mb_imagenet.json


*** Test Cases ***
Should Run Keyword Spotting Within Its Budgets On The STM32H743
    ${present}=    Run Keyword And Return Status    File Should Exist    ${KWS}
    Skip If    not ${present}    shared data absent: ${KWS}
    Profile Network    ${KWS}    stm32h743
    Network Should Fit
    Network Output Should Match Reference
    Network Latency Should Be Below      20
    Network Peak SRAM Should Be Below    32
    Network Flash Should Be Below        128

Should Fail A Latency Budget The STM32F412 Cannot Meet
    ${present}=    Run Keyword And Return Status    File Should Exist    ${KWS}
    Skip If    not ${present}    shared data absent: ${KWS}
    Profile Network    ${KWS}    stm32f412
    Run Keyword And Expect Error    latency * ms (* cycles at 100 MHz) of kws_ref_model.tflite on stm32f412 is not below the budget of 10 ms
    ...    Network Latency Should Be Below    10

Should Report MCUNet-512KB As Out Of Memory On The STM32F746
    ${present}=    Run Keyword And Return Status    File Should Exist    ${MCUNET_512}
    Skip If    not ${present}    shared data absent: ${MCUNET_512}
    Profile Network    ${MCUNET_512}    stm32f746
    Network Should Not Fit
    Run Keyword And Expect Error    *does not fit stm32f746*live there*
    ...    Network Should Fit
