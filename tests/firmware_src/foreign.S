/*
 * A bare-metal image written without AtomSim's runtime: its own vector table, its own UART
 * code, and one of three usual endings chosen with -DEND_HOW=1 (branch to self), 2 (BKPT)
 * or 3 (semihosting SYS_EXIT). UART_F7 selects the F7/H7 register layout.
 */
    .syntax unified
    .thumb
    .section .vectors, "a"
    .word 0x20010000          /* initial SP: inside SRAM/DTCM on every board */
    .word reset + 1

    .text
    .thumb_func
reset:
    ldr r0, =0x40004800       /* USART3 */
    adr r1, message
#if UART_F7
    movs r2, #0x0D            /* CR1: UE | RE | TE */
    str r2, [r0, #0x00]
#else
    movs r2, #0x0C
    orr r2, r2, #0x2000       /* CR1: UE | TE | RE */
    str r2, [r0, #0x0C]
#endif
next:
    ldrb r2, [r1], #1
    cbz r2, done
#if UART_F7
wait:
    ldr r3, [r0, #0x1C]       /* ISR */
    tst r3, #0x80             /* TXE */
    beq wait
    str r2, [r0, #0x28]       /* TDR */
#else
wait:
    ldr r3, [r0, #0x00]       /* SR */
    tst r3, #0x80
    beq wait
    str r2, [r0, #0x04]       /* DR */
#endif
    b next
done:
#if END_HOW == 1
    b .
#elif END_HOW == 2
    bkpt 0
#else
    movs r0, #0x18            /* SYS_EXIT */
    ldr r1, =0x20026          /* ADP_Stopped_ApplicationExit */
    bkpt 0xAB
    b .
#endif
    .align 2
message:
    .asciz "foreign firmware says hi\n"
    .ltorg
