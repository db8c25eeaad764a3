/* Elementwise add (TFLite int8 Add arithmetic), Cortex-M DSP version. Bit-identical to
 * reference/atomsim_add_s8.c. Contract: atomsim_nn.h.
 *
 * Fast path: each input's rescaled term MBQM((x + off) * 2^L, m, -e) (L = left_shift) is one
 * SMLAL. For e >= 1, dsp_mbqm's identity gives
 *   floor(((x + off) * m * 2^L + 2^(30 + e) + s * 2^30) / 2^(31 + e)),  s = sign(x + off),
 * and when e - 1 <= L every term is a multiple of 2^(e - 1), so dividing through leaves
 *   hi32(A * m + 2^31 + s * 2^(31 - e)),  A = (x + off) * 2^(L + 1 - e)
 * (|A| < 2^8 * 2^21 fits int32; the constant fits the low word). For e == 0 the same form
 * holds with the constant 2^31 alone (SRDHM of 2A). Per input: MLA (A), AND + SUB (the
 * sign-dependent constant), SMLAL. The sum is requantized with dsp_rq_fast when the output
 * shift lies in [-23, -2]; four results are packed and clamped as one word. Input shifts
 * below -(L + 1), or an output shift outside that range, take the reference arithmetic.
 */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_add_s8_get_buffer_size(const atomsim_dims *dims)
{
    (void)dims;
    return 0;
}

/* Per-input constants of the fast path. */
typedef struct {
    int32_t scale;  /* 2^(L + 1 - e) */
    int32_t offset; /* off * scale */
    int32_t m;      /* multiplier */
    uint32_t c_pos; /* 2^31 + 2^(31 - e) (2^31 for e == 0) */
    uint32_t c_neg; /* 2 * 2^(31 - e) (0 for e == 0): taken off c_pos when x + off < 0 */
} add_term_k;

static inline int add_term_setup(add_term_k *k, int32_t left_shift, int32_t offset,
                                 int32_t multiplier, int32_t shift)
{
    const int32_t e = -shift, j = left_shift + 1 - e;
    if (j < 0) {
        return 0;
    }
    const uint32_t d = e == 0 ? 0u : (UINT32_C(1) << (31 - e));
    k->scale = (int32_t)1 << j;
    k->offset = offset * k->scale;
    k->m = multiplier;
    k->c_pos = UINT32_C(0x80000000) + d;
    k->c_neg = 2 * d;
    return 1;
}

/* MBQM((x + off) * 2^L, m, shift) by the fast identity. */
static inline int32_t add_term(int32_t x, const add_term_k *k)
{
    const int32_t a = x * k->scale + k->offset;
    const uint32_t lo = k->c_pos - ((uint32_t)(a >> 31) & k->c_neg);
    return dsp_smlal_hi(lo, 0, a, k->m);
}

static inline int32_t add_one_fast(int32_t x1, int32_t x2, const add_term_k *k1,
                                   const add_term_k *k2, dsp_chq q)
{
    return dsp_rq_fast(add_term(x1, k1) + add_term(x2, k2), q);
}

atomsim_status atomsim_add_s8(const atomsim_context *ctx, const atomsim_add_params *params,
                              const atomsim_dims *dims, const int8_t *input1,
                              const int8_t *input2, int8_t *output)
{
    (void)ctx;
    if (params == 0 || input1 == 0 || input2 == 0 || output == 0 || !atomsim_dims_ok(dims) ||
        !atomsim_add_params_ok(params)) {
        return ATOMSIM_ARG_ERROR;
    }
    const atomsim_add_params p = *params;
    const int32_t count = atomsim_dims_count(dims);
    const dsp_rq rq = dsp_rq_setup(&p.output_multiplier, &p.output_shift, 1, p.output_offset,
                                   p.act_min, p.act_max);
    add_term_k k1, k2;
    if (rq.fast && add_term_setup(&k1, p.left_shift, p.input1_offset, p.input1_multiplier,
                                  p.input1_shift) &&
        add_term_setup(&k2, p.left_shift, p.input2_offset, p.input2_multiplier, p.input2_shift)) {
        const dsp_chq q = dsp_chq_of(&rq, 0);
        const int clamp = p.act_min > ATOMSIM_INT8_MIN || p.act_max < ATOMSIM_INT8_MAX;
        int32_t i = 0;
        for (; i + 4 <= count; i += 4) {
            const int32_t v0 = add_one_fast(input1[i], input2[i], &k1, &k2, q);
            const int32_t v1 = add_one_fast(input1[i + 1], input2[i + 1], &k1, &k2, q);
            const int32_t v2 = add_one_fast(input1[i + 2], input2[i + 2], &k1, &k2, q);
            const int32_t v3 = add_one_fast(input1[i + 3], input2[i + 3], &k1, &k2, q);
            const uint32_t w = dsp_pack4(v0, v1, v2, v3);
            dsp_write_u32(output + i, clamp ? dsp_clamp_s8x4(w, rq.min4, rq.max4) : w);
        }
        for (; i < count; i++) {
            dsp_store1(output + i, add_one_fast(input1[i], input2[i], &k1, &k2, q), &rq);
        }
        return ATOMSIM_OK;
    }
    for (int32_t i = 0; i < count; i++) { /* general path: the reference arithmetic */
        const int32_t a = (input1[i] + p.input1_offset) * (1 << p.left_shift);
        const int32_t b = (input2[i] + p.input2_offset) * (1 << p.left_shift);
        const int32_t sum = atomsim_mbqm(a, p.input1_multiplier, p.input1_shift) +
                            atomsim_mbqm(b, p.input2_multiplier, p.input2_shift);
        output[i] = atomsim_requantize(sum, p.output_multiplier, p.output_shift,
                                       p.output_offset, p.act_min, p.act_max);
    }
    return ATOMSIM_OK;
}
