/* Uses the FPU; with -DENABLE=1 it first grants CP10/CP11 in CPACR, as startup code must. */
    .syntax unified
    .thumb
    .section .vectors, "a"
    .word 0x20010000
    .word reset + 1
    .text
    .thumb_func
reset:
#if ENABLE
    ldr r0, =0xE000ED88
    ldr r1, [r0]
    orr r1, r1, #0x00F00000
    str r1, [r0]
    dsb
    isb
#endif
    b use_fpu
    .thumb_func
use_fpu:
    movs r0, #3
    vmov s0, r0
    vcvt.f32.s32 s0, s0
    vadd.f32 s1, s0, s0
    vcvt.s32.f32 s1, s1
    vmov r2, s1
    bkpt 0
    .ltorg
