/* Constant spatial padding, Cortex-M DSP version. Bit-identical to reference/atomsim_pad_s8.c.
 * Contract: atomsim_nn.h.
 *
 * The output is a sequence of fills and copies: top rows + first left padding, then per input
 * row its copy followed by one fill merging its right padding with the next row's left padding
 * (the last one also takes the bottom rows). With no left or right padding the input rows are
 * one contiguous copy. 2 * H + 1 calls instead of 3 * H + top + bottom.
 *
 * Both helpers write a run of n >= 4 bytes as one (possibly unaligned) word at each end and
 * aligned words in between, overlapping where the run is not a whole number of words (the
 * overlapped bytes get the same values twice), so no run costs a byte loop. The aligned middle
 * goes in 32-byte blocks: STM of the pad value replicated in every byte (fill), LDM + STM when
 * the source is word-aligned too, else eight LDRs (unaligned allowed) + STM (copy); a middle
 * that is not a whole number of blocks ends with one more block that overlaps the one before.
 * Middles under 8 words are single words; runs under 4 bytes are STRB / STRH / LDRB.
 */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_pad_s8_get_buffer_size(const atomsim_dims *input_dims,
                                       const atomsim_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    return 0;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* The block loops move 32 bytes per pass through eight fixed registers (LDM / STM lists must
 * be ascending, so the registers are named, not allocated). */
#define PAD_REGS "{r4, r5, r6, r8, r9, r10, r11, r12}"
#define PAD_CLOBBERS "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "cc", "memory"

/* n32 (>= 1) blocks of 32 bytes of pat at d (word-aligned). */
static inline void pad_fill32(uint8_t *d, uint32_t n32, uint32_t pat)
{
    __asm__ volatile("mov r4, %[p]\n\t"
                     "mov r5, %[p]\n\t"
                     "mov r6, %[p]\n\t"
                     "mov r8, %[p]\n\t"
                     "mov r9, %[p]\n\t"
                     "mov r10, %[p]\n\t"
                     "mov r11, %[p]\n\t"
                     "mov r12, %[p]\n\t"
                     "1:\n\t"
                     "stmia %[d]!, " PAD_REGS "\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b"
                     : [d] "+r"(d), [n] "+r"(n32)
                     : [p] "r"(pat)
                     : PAD_CLOBBERS);
}

/* n32 (>= 1) blocks of 32 bytes from s (word-aligned) to d (word-aligned). */
static inline void pad_copy32_aligned(uint8_t *d, const uint8_t *s, uint32_t n32)
{
    __asm__ volatile("1:\n\t"
                     "ldmia %[s]!, " PAD_REGS "\n\t"
                     "stmia %[d]!, " PAD_REGS "\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b"
                     : [d] "+r"(d), [s] "+r"(s), [n] "+r"(n32)
                     :
                     : PAD_CLOBBERS);
}

/* n32 (>= 1) blocks of 32 bytes from s (any alignment: LDR, not LDM) to d (word-aligned). */
static inline void pad_copy32_unaligned(uint8_t *d, const uint8_t *s, uint32_t n32)
{
    __asm__ volatile("1:\n\t"
                     "ldr r4, [%[s]]\n\t"
                     "ldr r5, [%[s], #4]\n\t"
                     "ldr r6, [%[s], #8]\n\t"
                     "ldr r8, [%[s], #12]\n\t"
                     "ldr r9, [%[s], #16]\n\t"
                     "ldr r10, [%[s], #20]\n\t"
                     "ldr r11, [%[s], #24]\n\t"
                     "ldr r12, [%[s], #28]\n\t"
                     "adds %[s], %[s], #32\n\t"
                     "stmia %[d]!, " PAD_REGS "\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b"
                     : [d] "+r"(d), [s] "+r"(s), [n] "+r"(n32)
                     :
                     : PAD_CLOBBERS);
}
#else /* host models: the same stores in the same order */
static inline void pad_fill32(uint8_t *d, uint32_t n32, uint32_t pat)
{
    for (uint32_t i = 0; i < 8 * n32; i++, d += 4) {
        dsp_write_u32(d, pat);
    }
}

static inline void pad_copy32_aligned(uint8_t *d, const uint8_t *s, uint32_t n32)
{
    for (uint32_t i = 0; i < 8 * n32; i++, d += 4, s += 4) {
        dsp_write_u32(d, dsp_read_u32(s));
    }
}

static inline void pad_copy32_unaligned(uint8_t *d, const uint8_t *s, uint32_t n32)
{
    pad_copy32_aligned(d, s, n32);
}
#endif

/* n bytes of pat's low byte at d (pat holds it in every byte). */
static inline void pad_fill(uint8_t *d, int32_t n, uint32_t pat)
{
    if (n < 4) { /* 0 to 3 bytes: STRB and / or STRH */
        if (n & 1) {
            d[n - 1] = (uint8_t)pat;
        }
        if (n & 2) {
            const uint16_t half = (uint16_t)pat;
            memcpy(d, &half, sizeof half);
        }
        return;
    }
    dsp_write_u32(d, pat);
    dsp_write_u32(d + n - 4, pat);
    const uint32_t skip = (0u - (uintptr_t)d) & 3u; /* to the first aligned word */
    d += skip;
    const uint32_t words = ((uint32_t)n - skip) >> 2; /* the rest is in the end word */
    if (words >= 8) {
        pad_fill32(d, words >> 3, pat);
        if ((words & 7u) != 0) { /* the last 8 words again, overlapping */
            pad_fill32(d + (words - 8u) * 4u, 1u, pat);
        }
        return;
    }
    for (uint32_t i = 0; i < words; i++) {
        dsp_write_u32(d + 4 * i, pat);
    }
}

/* n32 (>= 1) blocks of 32 bytes from s to d (word-aligned). */
static inline void pad_copy32(uint8_t *d, const uint8_t *s, uint32_t n32, int s_aligned)
{
    if (s_aligned) {
        pad_copy32_aligned(d, s, n32);
    } else {
        pad_copy32_unaligned(d, s, n32);
    }
}

/* n bytes from s to d. */
static inline void pad_copy(uint8_t *d, const uint8_t *s, int32_t n)
{
    if (n < 4) {
        for (int32_t i = 0; i < n; i++) {
            d[i] = s[i];
        }
        return;
    }
    dsp_write_u32(d, dsp_read_u32(s));
    dsp_write_u32(d + n - 4, dsp_read_u32(s + n - 4));
    const uint32_t skip = (0u - (uintptr_t)d) & 3u; /* to the first aligned word of d */
    d += skip;
    s += skip;
    const uint32_t words = ((uint32_t)n - skip) >> 2; /* the rest is in the end word */
    if (words >= 8) {
        const int s_aligned = ((uintptr_t)s & 3u) == 0;
        pad_copy32(d, s, words >> 3, s_aligned);
        if ((words & 7u) != 0) { /* the last 8 words again, overlapping (same values) */
            const uint32_t back = (words - 8u) * 4u;
            pad_copy32(d + back, s + back, 1u, s_aligned);
        }
        return;
    }
    for (uint32_t i = 0; i < words; i++) {
        dsp_write_u32(d + 4 * i, dsp_read_u32(s + 4 * i));
    }
}

atomsim_status atomsim_pad_s8(const atomsim_context *ctx, const atomsim_pad_params *params,
                              const atomsim_dims *input_dims, const int8_t *input,
                              const atomsim_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (params == 0 || input == 0 || output == 0 || !atomsim_dims_ok(input_dims) ||
        !atomsim_dims_ok(output_dims) || input_dims->n != 1 || output_dims->n != 1 ||
        params->pad_top < 0 || params->pad_bottom < 0 || params->pad_left < 0 ||
        params->pad_right < 0 || params->pad_value < ATOMSIM_INT8_MIN ||
        params->pad_value > ATOMSIM_INT8_MAX ||
        output_dims->h != input_dims->h + params->pad_top + params->pad_bottom ||
        output_dims->w != input_dims->w + params->pad_left + params->pad_right ||
        output_dims->c != input_dims->c) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t c = input_dims->c, in_h = input_dims->h;
    const int32_t in_row = input_dims->w * c, out_row = output_dims->w * c;
    const int32_t left = params->pad_left * c, gap = out_row - in_row; /* right + next left */
    const uint32_t pat = dsp_splat8(params->pad_value);
    const uint8_t *src = (const uint8_t *)input;
    uint8_t *dst = (uint8_t *)output;

    const int32_t head = params->pad_top * out_row + left;
    pad_fill(dst, head, pat);
    dst += head;
    if (gap == 0) {
        pad_copy(dst, src, in_h * in_row);
        dst += in_h * in_row;
    } else {
        for (int32_t y = 0; y < in_h - 1; y++, src += in_row) {
            pad_copy(dst, src, in_row);
            pad_fill(dst + in_row, gap, pat);
            dst += out_row;
        }
        pad_copy(dst, src, in_row);
        dst += in_row;
    }
    pad_fill(dst, (gap - left) + params->pad_bottom * out_row, pat);
    return ATOMSIM_OK;
}
