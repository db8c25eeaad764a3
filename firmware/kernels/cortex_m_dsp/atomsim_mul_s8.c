/* Elementwise or per-channel broadcast multiply (TFLite int8 Mul arithmetic), Cortex-M DSP
 * version. Bit-identical to reference/atomsim_mul_s8.c. Contract: atomsim_nn.h.
 *
 * Four elements per pass: SXTAB16 adds the offsets to both inputs' bytes in int16 lanes
 * (|x + offset| <= 255), SMULBB / SMULTT form the four products, each is requantized with
 * dsp_rq_fast (output shift in [-23, -2], else the general dsp_rq_slow), and the four
 * results are packed and clamped as one word. The broadcast case ([1, 1, 1, C] second
 * input, squeeze-and-excitation) runs the same row loop once per pixel; c % 4 scalar.
 */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_mul_s8_get_buffer_size(const atomsim_dims *input1_dims,
                                       const atomsim_dims *input2_dims)
{
    (void)input1_dims;
    (void)input2_dims;
    return 0;
}

/* n elements: out[i] = requant((in1[i] + off1) * (in2[i] + off2)). */
DSP_INLINE void mul_row(const int8_t *in1, const int8_t *in2, int8_t *out, int32_t n,
                        uint32_t off1, uint32_t off2, int32_t off1_s, int32_t off2_s,
                        const dsp_rq *rq, int clamp, const int fast)
{
    const dsp_chq q = dsp_chq_of(rq, 0);
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t x = dsp_read_u32(in1 + i), y = dsp_read_u32(in2 + i);
        const uint32_t x02 = dsp_sxtab16(off1, x), x13 = dsp_sxtab16_ror8(off1, x);
        const uint32_t y02 = dsp_sxtab16(off2, y), y13 = dsp_sxtab16_ror8(off2, y);
        const int32_t p0 = dsp_smlabb(x02, y02, 0), p2 = dsp_smlatt(x02, y02, 0);
        const int32_t p1 = dsp_smlabb(x13, y13, 0), p3 = dsp_smlatt(x13, y13, 0);
        uint32_t w;
        if (fast) {
            w = dsp_pack4(dsp_rq_fast(p0, q), dsp_rq_fast(p1, q), dsp_rq_fast(p2, q),
                          dsp_rq_fast(p3, q));
        } else {
            w = dsp_pack4(dsp_rq_slow(p0, rq, 0), dsp_rq_slow(p1, rq, 0),
                          dsp_rq_slow(p2, rq, 0), dsp_rq_slow(p3, rq, 0));
        }
        dsp_write_u32(out + i, clamp ? dsp_clamp_s8x4(w, rq->min4, rq->max4) : w);
    }
    for (; i < n; i++) {
        const int32_t prod = (in1[i] + off1_s) * (in2[i] + off2_s);
        dsp_store1(out + i, fast ? dsp_rq_fast(prod, q) : dsp_rq_slow(prod, rq, 0), rq);
    }
}

DSP_INLINE void mul_all(const int8_t *input1, const int8_t *input2, int8_t *output,
                        int32_t count, int32_t c, int same, const atomsim_mul_params *p,
                        const dsp_rq *rq, const int fast)
{
    const uint32_t off1 = dsp_pair16(p->input1_offset);
    const uint32_t off2 = dsp_pair16(p->input2_offset);
    const int clamp = p->act_min > ATOMSIM_INT8_MIN || p->act_max < ATOMSIM_INT8_MAX;
    if (same) {
        mul_row(input1, input2, output, count, off1, off2, p->input1_offset, p->input2_offset,
                rq, clamp, fast);
        return;
    }
    for (int32_t i = 0; i < count; i += c) {
        mul_row(input1 + i, input2, output + i, c, off1, off2, p->input1_offset,
                p->input2_offset, rq, clamp, fast);
    }
}

atomsim_status atomsim_mul_s8(const atomsim_context *ctx, const atomsim_mul_params *params,
                              const atomsim_dims *input1_dims, const int8_t *input1,
                              const atomsim_dims *input2_dims, const int8_t *input2,
                              int8_t *output)
{
    (void)ctx;
    const int kind = atomsim_mul_args(params, input1_dims, input1, input2_dims, input2, output);
    if (!kind) {
        return ATOMSIM_ARG_ERROR;
    }
    const int same = kind == ATOMSIM_MUL_ELEMENTWISE;
    const atomsim_mul_params p = *params;
    const int32_t count = atomsim_dims_count(input1_dims);
    const dsp_rq rq = dsp_rq_setup(&p.output_multiplier, &p.output_shift, 1, p.output_offset,
                                   p.act_min, p.act_max);
    if (rq.fast) {
        mul_all(input1, input2, output, count, input1_dims->c, same, &p, &rq, 1);
    } else {
        mul_all(input1, input2, output, count, input1_dims->c, same, &p, &rq, 0);
    }
    return ATOMSIM_OK;
}
