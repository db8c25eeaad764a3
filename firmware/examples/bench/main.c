/*
 * Self-checking compute benchmark: an int8 dot-product workload and a CRC-32, each computed
 * twice by different code paths and compared; prints the DWT cycle count of the timed part.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define N 64
#ifndef BENCH_REPEAT
#define BENCH_REPEAT 1 /* benchmarks/emulator_speed.py builds a longer run with -DBENCH_REPEAT */
#endif
static int8_t a[N * N], b[N * N];
static int32_t c[N * N];

static uint32_t crc32_bitwise(const uint8_t *p, uint32_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1u));
    }
    return ~crc;
}

static uint32_t crc32_table(const uint8_t *p, uint32_t n) {
    static uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int k = 0; k < 8; k++)
            r = (r >> 1) ^ (0xEDB88320u & -(r & 1u));
        table[i] = r;
    }
    uint32_t crc = 0xFFFFFFFFu;
    while (n--)
        crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

int main(void) {
    uint32_t seed = 12345;
    for (int i = 0; i < N * N; i++) {
        seed = seed * 1103515245u + 12345u;
        a[i] = (int8_t)(seed >> 16);
        seed = seed * 1103515245u + 12345u;
        b[i] = (int8_t)(seed >> 16);
    }
    atomsim_cycles_start();
    uint32_t t0 = atomsim_cycles();
    for (int rep = 0; rep < BENCH_REPEAT; rep++)
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int32_t acc = 0;
            for (int k = 0; k < N; k++)
                acc += a[i * N + k] * b[k * N + j];
            c[i * N + j] = acc;
        }
    uint32_t t1 = atomsim_cycles();
    /* check: row sums of c equal a · (column sums of b) */
    for (int i = 0; i < N; i++) {
        int64_t lhs = 0, rhs = 0;
        for (int j = 0; j < N; j++)
            lhs += c[i * N + j];
        for (int k = 0; k < N; k++) {
            int32_t colsum = 0;
            for (int j = 0; j < N; j++)
                colsum += b[k * N + j];
            rhs += (int64_t)a[i * N + k] * colsum;
        }
        if (lhs != rhs)
            atomsim_fail("matmul row-sum check");
    }
    uint32_t crc_a = crc32_bitwise((const uint8_t *)c, sizeof c);
    uint32_t crc_b = crc32_table((const uint8_t *)c, sizeof c);
    if (crc_a != crc_b)
        atomsim_fail("crc32 mismatch");
    atomsim_report_u32("matmul_cycles", t1 - t0);
    atomsim_report_u32("crc32", crc_a);
    atomsim_puts("bench: PASS\n");
    return 0;
}
