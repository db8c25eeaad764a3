/*
 * An application written the way ST's HAL examples are: HAL_Init() starts SysTick at 1 kHz
 * from the core clock, HAL_Delay() waits on the tick counter that SysTick_Handler advances,
 * the console UART is driven by interrupts (RXNE fills a ring buffer, TXE drains one), and
 * the main loop is a small scheduler that sleeps in WFI whenever it has nothing to do.
 * PendSV runs the periodic task (as an RTOS would switch to it), SVC is used once.
 *
 * Output (UART): boot line, the measured delay, one "echo: <line>" per received line, the
 * task counts, "halstyle: done"; then @atomsim report lines. Ends after "quit" or 300 ms.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define REG8(addr) (*(volatile uint8_t *)(addr))

/* Cortex-M system registers (ARMv7-M ARM B3). */
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define NVIC_ISER(n) REG(0xE000E100 + 4 * (n))
#define NVIC_IPR(irq) REG8(0xE000E400 + (irq))
#define SCB_ICSR REG(0xE000ED04)
#define SCB_AIRCR REG(0xE000ED0C)
#define SCB_SHPR3 REG(0xE000ED20)

/* The console USART and its IRQ number (same on F4, F7 and H7). */
#if ATOMSIM_UART_BASE == 0x40004800u
#define UART_IRQn 39
#define UART_IRQHandler USART3_IRQHandler
#elif ATOMSIM_UART_BASE == 0x40011000u
#define UART_IRQn 37
#define UART_IRQHandler USART1_IRQHandler
#elif ATOMSIM_UART_BASE == 0x40004400u
#define UART_IRQn 38
#define UART_IRQHandler USART2_IRQHandler
#else
#error "no IRQ number known for this console UART"
#endif
#if ATOMSIM_UART_F7_LAYOUT
#define UART_CR1 REG(ATOMSIM_UART_BASE + 0x00)
#define UART_ISR REG(ATOMSIM_UART_BASE + 0x1C)
#define UART_RDR REG(ATOMSIM_UART_BASE + 0x24)
#define UART_TDR REG(ATOMSIM_UART_BASE + 0x28)
#else
#define UART_CR1 REG(ATOMSIM_UART_BASE + 0x0C)
#define UART_ISR REG(ATOMSIM_UART_BASE + 0x00)
#define UART_RDR REG(ATOMSIM_UART_BASE + 0x04)
#define UART_TDR REG(ATOMSIM_UART_BASE + 0x04)
#endif
#define CR1_RXNEIE (1u << 5)
#define CR1_TXEIE (1u << 7)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)

#define TICK_INT_PRIORITY 0x0Fu
#define UART_PRIORITY 0x05u
#define HAL_MAX_DELAY 0xFFFFFFFFu

static inline void __enable_irq(void) { __asm volatile("cpsie i" ::: "memory"); }
static inline void __disable_irq(void) { __asm volatile("cpsid i" ::: "memory"); }
static inline void __WFI(void) { __asm volatile("wfi" ::: "memory"); }

/* ---- HAL core: tick ---------------------------------------------------------------------- */
static volatile uint32_t uwTick;
static const uint32_t SystemCoreClock = ATOMSIM_CLOCK_HZ;

void SysTick_Handler(void) {
    uwTick++;
    if (uwTick % 10 == 0)
        SCB_ICSR = 1u << 28; /* PENDSVSET: the 10 ms task runs in PendSV */
}

uint32_t HAL_GetTick(void) { return uwTick; }

int HAL_Init(void) {
    SCB_AIRCR = (0x05FAu << 16) | (3u << 8); /* NVIC_PRIORITYGROUP_4: 4 bits of preemption */
    SYST_RVR = SystemCoreClock / 1000u - 1u;   /* 1 kHz */
    SYST_CVR = 0;
    SCB_SHPR3 = (SCB_SHPR3 & 0x0000FFFFu) | (TICK_INT_PRIORITY << 28) | (0xFu << 20);
    SYST_CSR = 0x7; /* CLKSOURCE = core clock, TICKINT, ENABLE */
    return 0;
}

/* HAL_Delay as ST writes it (one tick added to guarantee the minimum wait), sleeping in WFI
 * between ticks instead of spinning. */
void HAL_Delay(uint32_t Delay) {
    uint32_t tickstart = HAL_GetTick();
    uint32_t wait = Delay;
    if (wait < HAL_MAX_DELAY)
        wait += 1u;
    while ((HAL_GetTick() - tickstart) < wait)
        __WFI();
}

/* ---- UART by interrupts ------------------------------------------------------------------- */
#define RING 128u
typedef struct {
    volatile uint8_t buf[RING];
    volatile uint32_t head, tail; /* head: next write, tail: next read */
} ring_t;
static ring_t rx_ring, tx_ring;

static int ring_put(ring_t *r, uint8_t c) {
    uint32_t next = (r->head + 1u) % RING;
    if (next == r->tail)
        return 0;
    r->buf[r->head] = c;
    r->head = next;
    return 1;
}

static int ring_get(ring_t *r, uint8_t *c) {
    if (r->tail == r->head)
        return 0;
    *c = r->buf[r->tail];
    r->tail = (r->tail + 1u) % RING;
    return 1;
}

static volatile uint32_t rx_irqs, tx_irqs;

void UART_IRQHandler(void) {
    uint32_t isr = UART_ISR;
    if (isr & ISR_RXNE) {
        rx_irqs++;
        ring_put(&rx_ring, (uint8_t)UART_RDR);
    }
    if ((UART_CR1 & CR1_TXEIE) && (isr & ISR_TXE)) {
        uint8_t c;
        tx_irqs++;
        if (ring_get(&tx_ring, &c))
            UART_TDR = c;
        else
            UART_CR1 &= ~CR1_TXEIE; /* nothing left: stop TXE interrupts */
    }
}

static void uart_start_it(void) {
    NVIC_IPR(UART_IRQn) = UART_PRIORITY << 4;
    NVIC_ISER(UART_IRQn / 32) = 1u << (UART_IRQn % 32);
    UART_CR1 |= CR1_RXNEIE;
}

static void uart_write(const char *s) {
    while (*s) {
        while (!ring_put(&tx_ring, (uint8_t)*s))
            __WFI(); /* full: the TXE interrupt makes room */
        s++;
        UART_CR1 |= CR1_TXEIE;
    }
}

static void uart_write_u32(uint32_t v) {
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    char out[12];
    for (int i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = 0;
    uart_write(out);
}

static void uart_flush(void) {
    while (UART_CR1 & CR1_TXEIE)
        __WFI();
}

/* ---- PendSV and SVC ----------------------------------------------------------------------- */
static volatile uint32_t task10_runs, svc_calls;

void PendSV_Handler(void) { task10_runs++; }
void SVC_Handler(void) { svc_calls++; }

/* ---- the scheduler ------------------------------------------------------------------------ */
static char line[64];
static uint32_t line_len;
static int quit;

static int line_task(void) {
    uint8_t c;
    int worked = 0;
    while (ring_get(&rx_ring, &c)) {
        worked = 1;
        if (c == '\r' || c == '\n') {
            if (!line_len)
                continue;
            line[line_len] = 0;
            if (line_len == 4 && line[0] == 'q' && line[1] == 'u' && line[2] == 'i' &&
                line[3] == 't')
                quit = 1;
            else {
                uart_write("echo: ");
                uart_write(line);
                uart_write("\n");
            }
            line_len = 0;
        } else if (line_len < sizeof line - 1) {
            line[line_len++] = (char)c;
        }
    }
    return worked;
}

int main(void) {
    HAL_Init();
    uart_start_it();
    __asm volatile("svc 0" ::: "memory");
    uart_write("halstyle: boot on " ATOMSIM_BOARD_ID "\n");

    atomsim_cycles_start();
    uint32_t c0 = atomsim_cycles(), t0 = HAL_GetTick();
    HAL_Delay(100);
    uint32_t c1 = atomsim_cycles(), t1 = HAL_GetTick();
    uart_write("halstyle: HAL_Delay(100) took ");
    uart_write_u32(t1 - t0);
    uart_write(" ticks\n");

    uint32_t start = HAL_GetTick();
    uint32_t sleeps = 0;
    while (!quit && HAL_GetTick() - start < 300u) {
        if (line_task())
            continue;
        __disable_irq(); /* the race-free sleep: no interrupt slips in between check and WFI */
        if (rx_ring.head == rx_ring.tail) {
            sleeps++;
            __WFI();
        }
        __enable_irq(); /* a pending interrupt is taken here */
    }
    uart_write("halstyle: svc=");
    uart_write_u32(svc_calls);
    uart_write(" task10=");
    uart_write_u32(task10_runs);
    uart_write(" rx_irqs=");
    uart_write_u32(rx_irqs);
    uart_write("\nhalstyle: done\n");
    uart_flush();
    atomsim_report_u32("delay_cycles", c1 - c0);
    atomsim_report_u32("delay_ticks", t1 - t0);
    atomsim_report_u32("ticks", HAL_GetTick());
    atomsim_report_u32("sleeps", sleeps);
    atomsim_report_u32("tx_irqs", tx_irqs);
    return 0;
}
