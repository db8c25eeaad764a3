/* Depthwise convolution (depth multiplier 1), Cortex-M DSP. Contract: atomsim_nn.h.
 *
 * The scratch buffer holds, per channel, bias + input_offset * (sum of the channel's taps).
 * For an output pixel whose window lies inside the input (the "interior" rectangle), the
 * accumulator then needs only sum(x * w), 4 channels at a time: per tap one LDR of 4 inputs,
 * 2 SXTB16 and 4 SMLAxy (SMLABB / SMLATT). Border pixels (window partly in the padding) take
 * the exact per-channel path of the reference kernel.
 *
 * 3x3 windows (every AtomDB dw atom) run channel group by channel group: the group's 9 taps
 * are unpacked once into 18 registers' worth of q15 pairs on the stack (one LDRD per tap
 * afterwards), its requantization constants are computed once, and the interior pixels are
 * then swept with the taps unrolled: 8 instructions per tap for 4 MACs. Requantization uses
 * the fast path of atomsim_dsp.h and stores the 4 outputs with one clamp and one STR. */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_depthwise_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                  const atomsim_dims *filter_dims,
                                                  const atomsim_dims *output_dims)
{
    (void)filter_dims;
    (void)output_dims;
    return 4 * input_dims->c;
}

/* Shapes and parameters of one call, gathered once. */
typedef struct {
    const int8_t *input;
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *fold; /* bias + input_offset * sum(taps), per channel */
    int32_t in_h, in_w, c, k_h, k_w, out_h, out_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t oy0, oy1, ox0, ox1; /* interior output rectangle [oy0, oy1) x [ox0, ox1) */
    const atomsim_conv_params *params;
    const atomsim_per_channel_quant_params *quant;
    dsp_rq rq;
} dw_call;

/* Accumulator of channel ch -> saturated int8 (act clamp still to do). */
DSP_INLINE int32_t dw_rq(const dw_call *d, int32_t acc, int32_t ch, const int fast)
{
    return fast ? dsp_rq_fast(acc, dsp_chq_of(&d->rq, ch)) : dsp_rq_slow(acc, &d->rq, ch);
}

/* Four saturated int8 values act-clamped with one SSUB8/SEL pair each way, one store. */
static inline void dw_store4(int8_t *out, int32_t v0, int32_t v1, int32_t v2, int32_t v3,
                             const dsp_rq *rq)
{
    uint32_t lo = dsp_bfi8((uint32_t)v0, (uint32_t)v1);
    uint32_t hi = dsp_bfi8((uint32_t)v2, (uint32_t)v3);
    const uint32_t packed = (lo & 0xFFFFu) | (hi << 16);
    dsp_write_u32(out, dsp_clamp_s8x4(packed, rq->min4, rq->max4));
}

/* One interior pixel, channels [ch_from, c), any window: per 4 channels the generic tap loop,
 * the rest one channel at a time. */
DSP_INLINE void dw_interior_pixel(const dw_call *d, int32_t oy, int32_t ox, int32_t ch_from,
                                  int8_t *output, const int fast)
{
    const int32_t c = d->c, in_w = d->in_w, k_h = d->k_h, k_w = d->k_w;
    const int8_t *in =
        d->input + ((oy * d->stride_h - d->pad_h) * in_w + ox * d->stride_w - d->pad_w) * c;
    int8_t *out = output + (oy * d->out_w + ox) * c;
    const int32_t row_step = (in_w - k_w) * c;
    int32_t ch = ch_from;
    for (; ch + 4 <= c; ch += 4) {
        int32_t a0 = d->fold[ch], a1 = d->fold[ch + 1], a2 = d->fold[ch + 2];
        int32_t a3 = d->fold[ch + 3];
        const int8_t *x = in + ch;
        const int8_t *w = d->filter + ch;
        for (int32_t ky = 0; ky < k_h; ky++, x += row_step) {
            for (int32_t kx = 0; kx < k_w; kx++, x += c, w += c) {
                const uint32_t xr = dsp_read_u32(x), wr = dsp_read_u32(w);
                const uint32_t x02 = dsp_sxtb16(xr), x13 = dsp_sxtb16_ror8(xr);
                const uint32_t w02 = dsp_sxtb16(wr), w13 = dsp_sxtb16_ror8(wr);
                a0 = dsp_smlabb(x02, w02, a0);
                a2 = dsp_smlatt(x02, w02, a2);
                a1 = dsp_smlabb(x13, w13, a1);
                a3 = dsp_smlatt(x13, w13, a3);
            }
        }
        dw_store4(out + ch, dw_rq(d, a0, ch, fast), dw_rq(d, a1, ch + 1, fast),
                  dw_rq(d, a2, ch + 2, fast), dw_rq(d, a3, ch + 3, fast), &d->rq);
    }
    for (; ch < c; ch++) {
        int32_t acc = d->fold[ch];
        for (int32_t ky = 0; ky < k_h; ky++) {
            for (int32_t kx = 0; kx < k_w; kx++) {
                acc += in[(ky * in_w + kx) * c + ch] * d->filter[(ky * k_w + kx) * c + ch];
            }
        }
        dsp_store1(out + ch, dw_rq(d, acc, ch, fast), &d->rq);
    }
}

/* One tap of the 3x3 sweep: 4 inputs at x against the unpacked weight pair w[0], w[1]. */
DSP_INLINE void dw_tap(const int8_t *x, const uint32_t *w, int32_t *a0, int32_t *a1,
                       int32_t *a2, int32_t *a3)
{
    const uint32_t xr = dsp_read_u32(x);
    const uint32_t x02 = dsp_sxtb16(xr), x13 = dsp_sxtb16_ror8(xr);
    *a0 = dsp_smlabb(x02, w[0], *a0);
    *a2 = dsp_smlatt(x02, w[0], *a2);
    *a1 = dsp_smlabb(x13, w[1], *a1);
    *a3 = dsp_smlatt(x13, w[1], *a3);
}

/* 3x3 interior, channel group by channel group (4 channels), every interior pixel. */
DSP_INLINE void dw_interior_3x3(const dw_call *d, int8_t *output, const int fast)
{
    const int32_t c = d->c, c2 = 2 * c, row = d->in_w * d->c;
    const int32_t px_step = d->stride_w * c, n_x = d->ox1 - d->ox0;
    for (int32_t ch = 0; ch + 4 <= c; ch += 4) {
        uint32_t w[18]; /* tap t: w[2t] = channels (0, 2), w[2t + 1] = channels (1, 3) */
        for (int32_t t = 0; t < 9; t++) {
            const uint32_t r = dsp_read_u32(d->filter + t * c + ch);
            w[2 * t] = dsp_sxtb16(r);
            w[2 * t + 1] = dsp_sxtb16_ror8(r);
        }
        const int32_t f0 = d->fold[ch], f1 = d->fold[ch + 1], f2 = d->fold[ch + 2];
        const int32_t f3 = d->fold[ch + 3];
        dsp_chq q[4] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
        if (fast) {
            for (int32_t i = 0; i < 4; i++) {
                q[i] = dsp_chq_of(&d->rq, ch + i);
            }
        }
        for (int32_t oy = d->oy0; oy < d->oy1; oy++) {
            const int8_t *x = d->input +
                              ((oy * d->stride_h - d->pad_h) * d->in_w + d->ox0 * d->stride_w -
                               d->pad_w) * c + ch;
            int8_t *out = output + (oy * d->out_w + d->ox0) * c + ch;
            for (int32_t n = 0; n < n_x; n++, x += px_step, out += c) {
                int32_t a0 = f0, a1 = f1, a2 = f2, a3 = f3;
                dw_tap(x, w, &a0, &a1, &a2, &a3);
                dw_tap(x + c, w + 2, &a0, &a1, &a2, &a3);
                dw_tap(x + c2, w + 4, &a0, &a1, &a2, &a3);
                const int8_t *x1 = x + row;
                dw_tap(x1, w + 6, &a0, &a1, &a2, &a3);
                dw_tap(x1 + c, w + 8, &a0, &a1, &a2, &a3);
                dw_tap(x1 + c2, w + 10, &a0, &a1, &a2, &a3);
                const int8_t *x2 = x1 + row;
                dw_tap(x2, w + 12, &a0, &a1, &a2, &a3);
                dw_tap(x2 + c, w + 14, &a0, &a1, &a2, &a3);
                dw_tap(x2 + c2, w + 16, &a0, &a1, &a2, &a3);
                if (fast) {
                    dw_store4(out, dsp_rq_fast(a0, q[0]), dsp_rq_fast(a1, q[1]),
                              dsp_rq_fast(a2, q[2]), dsp_rq_fast(a3, q[3]), &d->rq);
                } else {
                    dw_store4(out, dsp_rq_slow(a0, &d->rq, ch), dsp_rq_slow(a1, &d->rq, ch + 1),
                              dsp_rq_slow(a2, &d->rq, ch + 2), dsp_rq_slow(a3, &d->rq, ch + 3),
                              &d->rq);
                }
            }
        }
    }
}

/* Window partly in the padding: only in-bounds taps, offset added per value. */
static void dw_border_pixel(const dw_call *d, int32_t oy, int32_t ox, int8_t *output)
{
    const atomsim_conv_params *p = d->params;
    const int32_t c = d->c, in_w = d->in_w, k_w = d->k_w;
    const int32_t y0 = oy * d->stride_h - d->pad_h, x0 = ox * d->stride_w - d->pad_w;
    const int32_t ky0 = atomsim_max_i32(0, -y0), ky1 = atomsim_min_i32(d->k_h, d->in_h - y0);
    const int32_t kx0 = atomsim_max_i32(0, -x0), kx1 = atomsim_min_i32(k_w, in_w - x0);
    int8_t *out = output + (oy * d->out_w + ox) * c;
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t acc = d->bias ? d->bias[ch] : 0;
        for (int32_t ky = ky0; ky < ky1; ky++) {
            for (int32_t kx = kx0; kx < kx1; kx++) {
                const int32_t x = d->input[((y0 + ky) * in_w + x0 + kx) * c + ch];
                acc += (x + p->input_offset) * d->filter[(ky * k_w + kx) * c + ch];
            }
        }
        out[ch] = (int8_t)dsp_requantize(acc, d->quant->multiplier[ch], d->quant->shift[ch],
                                         p->output_offset, p->act_min, p->act_max);
    }
}

/* Every output pixel: border ones exactly, interior ones on the fast paths. */
DSP_INLINE void dw_run(const dw_call *d, int8_t *output, const int fast)
{
    const int three = d->k_h == 3 && d->k_w == 3;
    if (three) {
        dw_interior_3x3(d, output, fast);
    }
    for (int32_t oy = 0; oy < d->out_h; oy++) {
        const int row_inside = oy >= d->oy0 && oy < d->oy1;
        for (int32_t ox = 0; ox < d->out_w; ox++) {
            if (row_inside && ox >= d->ox0 && ox < d->ox1) {
                /* the 3x3 sweep did the channel groups; the c % 4 rest remains */
                if (!three || (d->c & 3)) {
                    dw_interior_pixel(d, oy, ox, three ? d->c & ~3 : 0, output, fast);
                }
            } else {
                dw_border_pixel(d, oy, ox, output);
            }
        }
    }
}

/* The two specialisations in frames of their own: inlined side by side, their stack slots
 * would add up in the kernel's frame. */
static __attribute__((noinline)) void dw_run_fast(const dw_call *d, int8_t *output)
{
    dw_run(d, output, 1);
}

static __attribute__((noinline)) void dw_run_exact(const dw_call *d, int8_t *output)
{
    dw_run(d, output, 0);
}

/* First output index whose window starts inside ([0, out)), and one past the last whose window
 * ends inside, along one axis. */
static void dw_interior_axis(int32_t in, int32_t k, int32_t stride, int32_t pad, int32_t out,
                             int32_t *first, int32_t *end)
{
    const int32_t lo = (pad + stride - 1) / stride;
    const int32_t hi = in - k + pad >= 0 ? (in - k + pad) / stride + 1 : 0;
    *first = atomsim_min_i32(lo, out);
    *end = atomsim_max_i32(*first, atomsim_min_i32(hi, out));
}

atomsim_status atomsim_depthwise_conv_s8(const atomsim_context *ctx,
                                         const atomsim_conv_params *params,
                                         const atomsim_per_channel_quant_params *quant,
                                         const atomsim_dims *input_dims, const int8_t *input,
                                         const atomsim_dims *filter_dims, const int8_t *filter,
                                         const int32_t *bias, const atomsim_dims *output_dims,
                                         int8_t *output)
{
    if (!atomsim_dims_ok(filter_dims) ||
        !atomsim_conv_args_ok(params, quant, input_dims, filter_dims->h, filter_dims->w,
                              output_dims, input, filter, output) ||
        filter_dims->n != 1 || filter_dims->c != input_dims->c ||
        output_dims->c != input_dims->c ||
        !atomsim_scratch_ok(ctx, atomsim_depthwise_conv_s8_get_buffer_size(
                                     input_dims, filter_dims, output_dims))) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t c = input_dims->c, taps = filter_dims->h * filter_dims->w;
    int32_t *fold = (int32_t *)ctx->buf;
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t sum = 0;
        for (int32_t t = 0; t < taps; t++) {
            sum += filter[t * c + ch];
        }
        fold[ch] = (bias ? bias[ch] : 0) + params->input_offset * sum;
    }
    dw_call d = {
        .input = input, .filter = filter, .bias = bias, .fold = fold,
        .in_h = input_dims->h, .in_w = input_dims->w, .c = c,
        .k_h = filter_dims->h, .k_w = filter_dims->w,
        .out_h = output_dims->h, .out_w = output_dims->w,
        .stride_h = params->stride_h, .stride_w = params->stride_w,
        .pad_h = params->pad_h, .pad_w = params->pad_w,
        .params = params, .quant = quant,
        .rq = dsp_rq_setup(quant->multiplier, quant->shift, c, params->output_offset,
                           params->act_min, params->act_max),
    };
    dw_interior_axis(d.in_h, d.k_h, d.stride_h, d.pad_h, d.out_h, &d.oy0, &d.oy1);
    dw_interior_axis(d.in_w, d.k_w, d.stride_w, d.pad_w, d.out_w, &d.ox0, &d.ox1);
    if (d.rq.fast) {
        dw_run_fast(&d, output);
    } else {
        dw_run_exact(&d, output);
    }
    return ATOMSIM_OK;
}
