/*
 * Exception-model and fault-model cases for tests/test_exceptions.py, one per -DCASE=<n>.
 * Each case prints what it observed ("@atomsim key=value" lines) or ends in the fault or
 * status under test. Register addresses: ARMv7-M ARM B3.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define NVIC_ISER(n) REG(0xE000E100 + 4 * (n))
#define NVIC_IPR8(irq) (*(volatile uint8_t *)(0xE000E400 + (irq)))
#define NVIC_STIR REG(0xE000EF00)
#define SCB_ICSR REG(0xE000ED04)
#define SCB_CCR REG(0xE000ED14)
#define SCB_SHPR3 REG(0xE000ED20)

#define CASE_BRANCH_ARM 1
#define CASE_DIV0_TRAP 2
#define CASE_DIV0_NOTRAP 3
#define CASE_FETCH_PERIPHERAL 4
#define CASE_SVC_MASKED 5
#define CASE_SLEEP_NO_WAKE 6
#define CASE_NESTED 7
#define CASE_FPU_PSP 8
#define CASE_WFI_PRIMASK 9
#define CASE_UNALIGN_TRAP 10
#define CASE_LDRD_UNALIGNED 11
#define CASE_STM_UNALIGNED 12
#define CASE_UNALIGNED_OK 13
#define CASE_LDRD_SKIPPED 14
#define CASE_USAGEFAULT_ENABLED 15
#define CASE_IDLE_LOOP 16

static volatile uint32_t log_[8], n_log, ticks, lr_seen;
static volatile float fp_in_handler;

static void note(uint32_t v) {
    if (n_log < 8)
        log_[n_log++] = v;
}

/* USART1 (IRQ 37) and USART2 (IRQ 38) vectors serve as two software-triggered IRQs. */
void USART1_IRQHandler(void) { /* low priority: pends the high one, which preempts */
    note(37);
    NVIC_STIR = 38;
    __asm volatile("dsb\n isb" ::: "memory");
    note(1037);
}

void USART2_IRQHandler(void) { note(38); }

void SysTick_Handler(void) {
    uint32_t lr;
    __asm volatile("mov %0, lr" : "=r"(lr));
    lr_seen = lr;
    ticks++;
#if CASE == CASE_IDLE_LOOP
    if (ticks == 5) {
        atomsim_report_u32("ticks", ticks);
        atomsim_exit(0);
    }
#endif
#if CASE == CASE_FPU_PSP
    /* Clobber the caller-saved FP registers the frame must restore. */
    __asm volatile("vmov.f32 s0, #1.0\n vmov.f32 s1, #2.0\n vmov.f32 s15, #3.0" ::: "s0", "s1",
                   "s15");
#endif
}

static void systick_start(uint32_t period) {
    SYST_RVR = period - 1;
    SYST_CVR = 0;
    SYST_CSR = 0x7;
}

__attribute__((noinline, used)) uint32_t thread_fp_work(void) {
    /* Hold values in s0/s1 across SysTick interrupts. */
    uint32_t ok = 1;
    for (int i = 0; i < 400; i++) {
        float a, b;
        __asm volatile("vmov.f32 s0, #0.5\n vmov.f32 s1, #0.25\n"
                       "wfi\n"
                       "vmov %0, s0\n vmov %1, s1"
                       : "=r"(a), "=r"(b)::"s0", "s1");
        ok &= a == 0.5f && b == 0.25f;
    }
    return ok;
}

static uint32_t psp_stack[256] __attribute__((aligned(8)));

int main(void) {
#if CASE == CASE_BRANCH_ARM
    uint32_t target = (uint32_t)&atomsim_puts & ~1u; /* an ARM-state (even) address */
    __asm volatile("bx %0" ::"r"(target));
#elif CASE == CASE_DIV0_TRAP || CASE == CASE_DIV0_NOTRAP || CASE == CASE_USAGEFAULT_ENABLED
#if CASE == CASE_USAGEFAULT_ENABLED
    REG(0xE000ED24) |= 1u << 18; /* SHCSR.USGFAULTENA: no escalation to HardFault */
#endif
#if CASE == CASE_DIV0_TRAP || CASE == CASE_USAGEFAULT_ENABLED
    SCB_CCR |= 1u << 4; /* DIV_0_TRP */
    __asm volatile("dsb\n isb" ::: "memory");
#endif
    volatile int32_t num = 7, den = 0;
    int32_t q = num / den;
    atomsim_report_u32("quotient", (uint32_t)q);
#elif CASE == CASE_FETCH_PERIPHERAL
    ((void (*)(void))(ATOMSIM_UART_BASE | 1u))();
#elif CASE == CASE_SVC_MASKED
    __asm volatile("cpsid i\n svc 1" ::: "memory");
#elif CASE == CASE_SLEEP_NO_WAKE
    __asm volatile("wfi" ::: "memory");
    atomsim_puts("woke up\n");
#elif CASE == CASE_NESTED
    NVIC_IPR8(37) = 0xC0; /* low */
    NVIC_IPR8(38) = 0x40; /* high */
    NVIC_ISER(1) = (1u << 5) | (1u << 6);
    NVIC_STIR = 37;
    __asm volatile("dsb\n isb" ::: "memory");
    note(1);
    for (uint32_t i = 0; i < n_log; i++)
        atomsim_report_u32("log", log_[i]);
#elif CASE == CASE_FPU_PSP
    /* Thread mode on the process stack, misaligned by 4 so the frame needs xPSR bit 9. */
    uint32_t top = (uint32_t)&psp_stack[256] - 4, ok, control;
    systick_start(2000);
    /* One asm statement: switch to the PSP, run the work there, switch back to the MSP. */
    __asm volatile("msr psp, %2\n movs r0, #2\n msr control, r0\n isb\n"
                   "bl thread_fp_work\n mrs %1, control\n mov %0, r0\n"
                   "movs r0, #0\n msr control, r0\n isb"
                   : "=r"(ok), "=r"(control) : "r"(top)
                   : "r0", "r1", "r2", "r3", "r12", "lr", "s0", "s1", "s2", "s3", "s4", "s5",
                     "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15",
                     "memory", "cc");
    SYST_CSR = 0;
    atomsim_report_u32("fp_ok", ok);
    atomsim_report_u32("ticks", ticks);
    atomsim_report_u32("lr", lr_seen);
    atomsim_report_u32("spsel", (control >> 1) & 1);
#elif CASE == CASE_WFI_PRIMASK
    /* WFI with PRIMASK set wakes on the pending SysTick but takes it only at CPSIE. */
    systick_start(5000);
    __asm volatile("cpsid i" ::: "memory");
    __asm volatile("wfi" ::: "memory");
    uint32_t before = ticks;
    __asm volatile("cpsie i\n nop\n nop" ::: "memory");
    uint32_t after = ticks;
    SYST_CSR = 0;
    atomsim_report_u32("before", before);
    atomsim_report_u32("after", after);
#elif CASE == CASE_UNALIGN_TRAP || CASE == CASE_UNALIGNED_OK
    static uint32_t words[4] = {0x11223344, 0x55667788, 0, 0};
#if CASE == CASE_UNALIGN_TRAP
    SCB_CCR |= 1u << 3; /* UNALIGN_TRP */
    __asm volatile("dsb\n isb" ::: "memory");
#endif
    uint32_t v;
    __asm volatile("ldr %0, [%1]" : "=r"(v) : "r"((uint8_t *)words + 1) : "memory");
    atomsim_report_u32("unaligned", v);
#elif CASE == CASE_LDRD_UNALIGNED
    static uint32_t words[4];
    uint32_t a, b;
    __asm volatile("ldrd %0, %1, [%2]" : "=r"(a), "=r"(b) : "r"((uint8_t *)words + 2)
                   : "memory");
    atomsim_report_u32("ldrd", a + b);
#elif CASE == CASE_LDRD_SKIPPED
    static uint32_t words[4];
    uint32_t a = 5, b = 6;
    /* The condition fails: no access, so no alignment fault (an IT block skips it). */
    __asm volatile("cmp %2, %2\n it ne\n ldrdne %0, %1, [%2]"
                   : "+r"(a), "+r"(b) : "r"((uint8_t *)words + 2) : "memory", "cc");
    atomsim_report_u32("ldrd", a + b);
#elif CASE == CASE_IDLE_LOOP
    systick_start(10000);
    for (;;) {
        /* all the work happens in SysTick_Handler */
    }
#elif CASE == CASE_STM_UNALIGNED
    static uint32_t words[4];
    __asm volatile("movs r2, #1\n movs r3, #2\n stm %0, {r2, r3}" ::"r"((uint8_t *)words + 1)
                   : "r2", "r3", "memory");
    atomsim_report_u32("stm", words[0]);
#endif
    return 0;
}
