/*
 * Serial job link (see serial_link.h and docs/serial-protocol.md for the frame layout).
 *
 * Frame: A5 5A | type | seq | len (u16 LE) | CRC-8 of type..len | payload | CRC-32 (LE) of
 * everything from type to the payload's end. A frame whose header or CRC does not check is dropped one byte at a time and
 * the bytes already received are searched again for the next start, so a dropped or corrupted
 * byte costs one retransmission, never a lost sync. Every request gets exactly one reply with
 * its sequence number; a request repeating the previous sequence number (the host did not get
 * our reply) is answered again without being applied twice.
 */
#include "serial_link.h"

#include <stddef.h>
#include <string.h>

#include "atomsim_rt.h"
#include "harness_jobs.h"

#define PROTOCOL_VERSION 1u
#define MAX_PAYLOAD 1024u
#define HEADER 7u
#define TRAILER 4u
#define SOF0 0xA5u
#define SOF1 0x5Au

enum frame_type {
    T_HELLO = 0x01,
    T_WRITE = 0x02,
    T_RUN = 0x03,
    T_READ = 0x04,
    T_REPLY = 0x80, /* a reply's type is the request's | T_REPLY */
    T_BOOT = 0xB0,  /* unsolicited, sequence 0: the firmware (re)started */
    T_ERROR = 0xFF,
};

enum link_error {
    E_UNKNOWN_TYPE = 1,
    E_LENGTH = 2,
    E_RANGE = 3,
    E_SESSION = 4,    /* no HELLO since reset, or another session's nonce */
    E_UPLOAD_CRC = 5, /* the host's upload CRC differs from what was applied here */
    E_JOBS = 6,
};

extern const uint32_t vector_table[];
extern const char __flash_used_end[];
extern char _end[];
extern char __heap_limit[];

/* All of the link's mutable state lives at the top of the arena, not in .bss: the memory path
 * (harness.c) then sees the same static RAM, the same arena and the same code addresses as a
 * harness without the serial link, so the two paths' measurements stay comparable. The arena
 * the host may write (HELLO reports it) ends where this state begins. */
struct link_state {
    uint32_t crc_table[256];
    uint8_t rx[HEADER + MAX_PAYLOAD + TRAILER];
    uint32_t rx_n;
    uint8_t tx[HEADER + MAX_PAYLOAD + TRAILER];
    uint32_t session;    /* 0 after reset: the host must say HELLO first */
    uint32_t upload_crc; /* CRC-32 over every WRITE payload applied in this session */
    int have_last;
    uint8_t last_type, last_seq;
    uint8_t last_result[12 + 8 * 64];
    uint32_t last_result_len;
    uint32_t fw_crc; /* CRC-32 of the image, computed once */
};
#define S ((struct link_state *)(((uintptr_t)__heap_limit - sizeof(struct link_state)) & ~(uintptr_t)7))

ATOMSIM_LATE_TEXT static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        S->crc_table[i] = c;
    }
}

/* zlib's crc32(): crc32(crc32(0, a), b) == crc32(0, a || b). */
ATOMSIM_LATE_TEXT static uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n) {
    crc = ~crc;
    while (n--)
        crc = S->crc_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

ATOMSIM_LATE_TEXT static uint8_t crc8(const uint8_t *p, uint32_t n) { /* polynomial 0x07, initial 0 */
    uint8_t c = 0;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (uint8_t)((c & 0x80u) ? (c << 1) ^ 0x07u : c << 1);
    }
    return c;
}

ATOMSIM_LATE_TEXT static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

ATOMSIM_LATE_TEXT static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

ATOMSIM_LATE_TEXT static void send(uint8_t type, uint8_t seq, const uint8_t *payload, uint32_t n) {
    S->tx[0] = SOF0;
    S->tx[1] = SOF1;
    S->tx[2] = type;
    S->tx[3] = seq;
    S->tx[4] = (uint8_t)n;
    S->tx[5] = (uint8_t)(n >> 8);
    S->tx[6] = crc8(&S->tx[2], 4);
    if (payload != &S->tx[HEADER])
        memcpy(&S->tx[HEADER], payload, n);
    put32(&S->tx[HEADER + n], crc32_update(0, &S->tx[2], HEADER - 2 + n));
    for (uint32_t i = 0; i < HEADER + n + TRAILER; i++)
        atomsim_putc((char)S->tx[i]);
}

ATOMSIM_LATE_TEXT static void send_error(uint8_t seq, uint8_t request, uint8_t code, uint32_t detail) {
    uint8_t p[8] = {code, request, 0, 0};
    put32(&p[4], detail);
    send(T_ERROR, seq, p, sizeof p);
}

ATOMSIM_LATE_TEXT static void fill(uint32_t need) {
    while (S->rx_n < need)
        S->rx[S->rx_n++] = (uint8_t)atomsim_getc();
}

ATOMSIM_LATE_TEXT static void drop_one(void) {
    /* A forward copy by hand, through a volatile pointer so that GCC does not turn it back
     * into memmove: libc's memmove would sit between memcpy and memset and move memset, which
     * the kernels call (and the M7 model's cycles depend on where code sits). */
    volatile uint8_t *buf = S->rx;
    S->rx_n--;
    for (uint32_t i = 0; i < S->rx_n; i++)
        buf[i] = buf[i + 1];
}

/* A byte that arrived while we were busy (a retransmission during a long kernel) sets the
 * overrun flag; on the F7/H7 USART it stays set until cleared through ICR.ORECF. The F4 USART
 * clears it by the SR-then-DR read that atomsim_getc() does anyway. */
ATOMSIM_LATE_TEXT static void clear_overrun(void) {
#if ATOMSIM_UART_F7_LAYOUT
    *(volatile uint32_t *)(ATOMSIM_UART_BASE + 0x20u) = 1u << 3; /* ICR.ORECF */
#endif
}

/* Block until a frame with valid header and CRC sits at S->rx[0]; return its payload length. */
ATOMSIM_LATE_TEXT static uint32_t receive(void) {
    clear_overrun();
    S->rx_n = 0;
    for (;;) {
        fill(1);
        if (S->rx[0] != SOF0) {
            drop_one();
            continue;
        }
        fill(2);
        if (S->rx[1] != SOF1) {
            drop_one();
            continue;
        }
        fill(HEADER);
        uint32_t len = S->rx[4] | (uint32_t)S->rx[5] << 8;
        if (crc8(&S->rx[2], 4) != S->rx[6] || len > MAX_PAYLOAD) {
            drop_one();
            continue;
        }
        fill(HEADER + len + TRAILER);
        if (crc32_update(0, &S->rx[2], HEADER - 2 + len) != get32(&S->rx[HEADER + len])) {
            drop_one();
            continue;
        }
        return len;
    }
}

ATOMSIM_LATE_TEXT static int inside(uint32_t addr, uint32_t n, uint32_t lo, uint32_t hi) {
    return addr >= lo && addr <= hi && n <= hi - addr;
}

ATOMSIM_LATE_TEXT static uint32_t arena_lo(void) { return ((uint32_t)(uintptr_t)_end + 7u) & ~7u; }
ATOMSIM_LATE_TEXT static uint32_t arena_hi(void) { return (uint32_t)(uintptr_t)S; }

/* Writes go to the job array or the arena (free RAM after .bss), nowhere else. */
ATOMSIM_LATE_TEXT static int writable(const atomsim_serial_harness *h, uint32_t addr, uint32_t n) {
    uint32_t jobs = (uint32_t)(uintptr_t)h->jobs;
    return inside(addr, n, jobs, jobs + h->job_size * h->max_jobs) ||
           inside(addr, n, arena_lo(), arena_hi());
}

ATOMSIM_LATE_TEXT static void hello(const atomsim_serial_harness *h, uint8_t seq, const uint8_t *p, uint32_t n) {
    if (n != 4) {
        send_error(seq, T_HELLO, E_LENGTH, n);
        return;
    }
    S->session = get32(p);
    S->upload_crc = 0;
    S->have_last = 0;
    if (S->fw_crc == 0) /* once: the image does not change while it runs */
        S->fw_crc = crc32_update(0, (const uint8_t *)vector_table,
                              (uint32_t)(__flash_used_end - (const char *)vector_table));
    uint8_t *r = &S->tx[HEADER];
    const uint32_t fields[] = {PROTOCOL_VERSION,    MAX_PAYLOAD,         h->job_size,
                               h->max_jobs,         (uint32_t)(uintptr_t)h->jobs,   arena_lo(),
                               arena_hi(), ATOMSIM_CLOCK_HZ, (uint32_t)(uintptr_t)vector_table,
                               (uint32_t)(uintptr_t)__flash_used_end, S->fw_crc,       S->session};
    uint32_t len = 0;
    for (uint32_t i = 0; i < sizeof fields / sizeof fields[0]; i++, len += 4)
        put32(r + len, fields[i]);
    const char *id = ATOMSIM_BOARD_ID;
    while (*id)
        r[len++] = (uint8_t)*id++;
    send(T_HELLO | T_REPLY, seq, r, len);
}

ATOMSIM_LATE_TEXT static void write_data(const atomsim_serial_harness *h, uint8_t seq, const uint8_t *p,
                       uint32_t n, int repeated) {
    if (n < 8) {
        send_error(seq, T_WRITE, E_LENGTH, n);
        return;
    }
    if (S->session == 0 || get32(p) != S->session) {
        send_error(seq, T_WRITE, E_SESSION, S->session);
        return;
    }
    uint32_t addr = get32(p + 4);
    if (!writable(h, addr, n - 8)) {
        send_error(seq, T_WRITE, E_RANGE, addr);
        return;
    }
    if (!repeated) {
        memcpy((void *)(uintptr_t)addr, p + 8, n - 8);
        S->upload_crc = crc32_update(S->upload_crc, p + 4, n - 4);
    }
    uint8_t r[4];
    put32(r, S->upload_crc);
    send(T_WRITE | T_REPLY, seq, r, sizeof r);
}

ATOMSIM_LATE_TEXT static void run(const atomsim_serial_harness *h, uint8_t seq, const uint8_t *p, uint32_t n,
                int repeated) {
    if (repeated && S->last_result_len) {
        send(T_RUN | T_REPLY, seq, S->last_result, S->last_result_len);
        return;
    }
    if (n < 12 || (n - 12) % 8 != 0) {
        send_error(seq, T_RUN, E_LENGTH, n);
        return;
    }
    if (S->session == 0 || get32(p) != S->session) {
        send_error(seq, T_RUN, E_SESSION, S->session);
        return;
    }
    if (get32(p + 4) != S->upload_crc) {
        send_error(seq, T_RUN, E_UPLOAD_CRC, S->upload_crc);
        return;
    }
    uint32_t njobs = get32(p + 8);
    if (njobs == 0 || njobs > h->max_jobs || njobs > 64 || n != 12 + 8 * njobs) {
        send_error(seq, T_RUN, E_JOBS, njobs);
        return;
    }
    for (uint32_t i = 0; i < njobs; i++) {
        if (!writable(h, get32(p + 12 + 8 * i), get32(p + 16 + 8 * i))) {
            send_error(seq, T_RUN, E_RANGE, get32(p + 12 + 8 * i));
            return;
        }
    }
    /* Poison the outputs: a kernel that does not write its output cannot pass the CRC check
     * with what an earlier run left there. */
    for (uint32_t i = 0; i < njobs; i++)
        memset((void *)(uintptr_t)get32(p + 12 + 8 * i), 0x5A, get32(p + 16 + 8 * i));
    /* The measurement: DWT CYCCNT around each kernel call, nothing else in between. */
    int32_t status = 0;
    uint32_t done = 0;
    uint32_t per_job[64];
    uint32_t start = atomsim_cycles(), prev = start;
    while (done < njobs && status == 0) {
        status = h->run_job((const uint8_t *)h->jobs + done * h->job_size);
        uint32_t now = atomsim_cycles();
        per_job[done] = now - prev;
        prev = now;
        done++;
    }
    uint32_t total = prev - start;
    for (uint32_t i = 0; i < done; i++) {
        uint32_t crc = crc32_update(0, (const uint8_t *)(uintptr_t)get32(p + 12 + 8 * i),
                                    get32(p + 16 + 8 * i));
        put32(&S->last_result[12 + 8 * i], per_job[i]);
        put32(&S->last_result[16 + 8 * i], crc);
    }
    put32(&S->last_result[0], (uint32_t)status);
    put32(&S->last_result[4], done);
    put32(&S->last_result[8], total);
    S->last_result_len = 12 + 8 * done;
    send(T_RUN | T_REPLY, seq, S->last_result, S->last_result_len);
}

ATOMSIM_LATE_TEXT static void read_data(uint8_t seq, const uint8_t *p, uint32_t n) {
    if (n != 12) {
        send_error(seq, T_READ, E_LENGTH, n);
        return;
    }
    if (S->session == 0 || get32(p) != S->session) {
        send_error(seq, T_READ, E_SESSION, S->session);
        return;
    }
    uint32_t addr = get32(p + 4), len = get32(p + 8);
    /* Any RAM the firmware reports on (arena, outputs); bounded by the frame size. */
    if (len > MAX_PAYLOAD || !inside(addr, len, arena_lo(), arena_hi())) {
        send_error(seq, T_READ, E_RANGE, addr);
        return;
    }
    send(T_READ | T_REPLY, seq, (const uint8_t *)(uintptr_t)addr, len);
}

ATOMSIM_LATE_TEXT static int32_t run_job(const void *job) { return atomsim_harness_dispatch(job); }

ATOMSIM_LATE_TEXT void atomsim_serial_entry(const char *why) {
    (void)why; /* the memory path found no job list: a board after power-on or reset */
    static const atomsim_serial_harness link = {(void *)atomsim_jobs, sizeof(atomsim_job_t),
                                                MAX_JOBS, run_job};
    atomsim_njobs = 0;
    atomsim_serial_serve(&link);
}

ATOMSIM_LATE_TEXT void atomsim_serial_serve(const atomsim_serial_harness *h) {
    memset(S, 0, sizeof *S);
    crc_init();
    atomsim_cycles_start();
    uint8_t boot[8];
    put32(boot, 0x4C535441u); /* "ATSL" */
    put32(boot + 4, PROTOCOL_VERSION);
    send(T_BOOT, 0, boot, sizeof boot);
    for (;;) {
        uint32_t n = receive();
        uint8_t type = S->rx[2], seq = S->rx[3];
        const uint8_t *p = &S->rx[HEADER];
        int repeated = S->have_last && seq == S->last_seq && type == S->last_type;
        if (!repeated)
            S->last_result_len = 0;
        switch (type) {
        case T_HELLO:
            hello(h, seq, p, n);
            break;
        case T_WRITE:
            write_data(h, seq, p, n, repeated);
            break;
        case T_RUN:
            run(h, seq, p, n, repeated);
            break;
        case T_READ:
            read_data(seq, p, n);
            break;
        default:
            send_error(seq, type, E_UNKNOWN_TYPE, type);
            break;
        }
        if (type != T_HELLO) {
            S->have_last = 1;
            S->last_type = type;
            S->last_seq = seq;
        }
    }
}
