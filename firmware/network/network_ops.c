/*
 * Network-only ops: what a deployed model runs besides the atom kernels of atomsim_nn.h.
 *
 * atomsim_net_softmax_s8 is TFLite's int8 softmax (reference_ops::Softmax): the input
 * difference to the row maximum, rescaled to Q5.26, goes through gemmlowp's
 * exp_on_negative_values; the sum in Q12.19 is inverted with one_over_one_plus_x; output scale
 * 1/256, zero point -128.
 *
 * atomsim_net_logistic_s8 is TFLite's int8 logistic (reference_integer_ops::Logistic): inputs
 * at or beyond the range radius (after the zero point) saturate to -128 / 127, the others are
 * rescaled to Q4.27 and go through gemmlowp's logistic (exp_on_negative_values of -|a|, then
 * one_over_one_plus_x); output scale 1/256, zero point -128. It is compiled only when the
 * network has a logistic layer (ATOMSIM_USES_LOGISTIC), so that the softmax code of the other
 * networks stays what it was (exp_on_negative_values specialised for Q5.26).
 *
 * atomsim/nn/interpreter.py holds the numpy twins (softmax_s8, logistic_s8).
 */
#include <stdint.h>

#include "atomsim_network.h"

static int32_t srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t rdbpot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)((1u << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t sat_shift_left(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1);
    if (x > threshold)
        return INT32_MAX;
    if (x < -threshold)
        return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31. */
static int32_t exp_on_interval(int32_t a) {
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = rdbpot(x4, 2);
    const int32_t poly = rdbpot(srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 in Q(integer_bits).(31 - integer_bits), integer_bits 4 (logistic) or
 * 5 (softmax); result in Q0.31. */
static int32_t exp_on_negative_values(int32_t a, int integer_bits) {
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535,   720401,     242};
    const int frac = 31 - integer_bits;
    const int32_t quarter = 1 << (frac - 2);
    const int32_t a_mod = (a & (quarter - 1)) - quarter;
    int32_t result = exp_on_interval(sat_shift_left(a_mod, integer_bits));
    const int32_t remainder = a_mod - a;
    for (int e = -2; e < integer_bits; e++) /* exp(-2^e) for the bits above the quarter */
        if (remainder & (1 << (frac + e)))
            result = srdhm(result, multipliers[e + 2]);
    return a == 0 ? INT32_MAX : result;
}

static int32_t one_over_one_plus_x(int32_t a) {
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + srdhm(half_denominator, -1010580540);
    for (int i = 0; i < 3; i++) {
        const int32_t hdx = srdhm(half_denominator, x);
        x = x + sat_shift_left(srdhm(x, (1 << 29) - hdx), 2);
    }
    return sat_shift_left(x, 1);
}

atomsim_status atomsim_net_softmax_s8(const int32_t *params, const atomsim_dims *dims,
                                      const int8_t *input, int8_t *output) {
    const int32_t multiplier = params[0], left_shift = params[1], diff_min = params[2];
    const int32_t depth = dims->c;
    const int32_t rows = dims->n * dims->h * dims->w;
    if (depth < 1 || rows < 1 || left_shift < 0 || left_shift > 31)
        return ATOMSIM_ARG_ERROR;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *in = input + r * depth;
        int8_t *out = output + r * depth;
        int32_t max = -128;
        for (int32_t c = 0; c < depth; c++)
            max = in[c] > max ? in[c] : max;
        int32_t sum = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; c++) {
            const int32_t diff = in[c] - max;
            if (diff >= diff_min)
                sum += rdbpot(exp_on_negative_values(
                                  srdhm((int32_t)((uint32_t)diff << left_shift), multiplier), 5),
                              12);
        }
        const int headroom = __builtin_clz((uint32_t)sum);
        const int bits_over_unit = 12 - headroom;
        const int32_t shifted_minus_one =
            (int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31));
        const int32_t scale = one_over_one_plus_x(shifted_minus_one);
        const int exponent = bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; c++) {
            const int32_t diff = in[c] - max;
            int32_t y = -128;
            if (diff >= diff_min) {
                const int32_t e = exp_on_negative_values(
                    srdhm((int32_t)((uint32_t)diff << left_shift), multiplier), 5);
                y = rdbpot(srdhm(scale, e), exponent) - 128;
                y = y < -128 ? -128 : (y > 127 ? 127 : y);
            }
            out[c] = (int8_t)y;
        }
    }
    return ATOMSIM_OK;
}

#if ATOMSIM_USES_LOGISTIC
/* gemmlowp logistic: a in Q4.27, result in Q0.31. */
static int32_t logistic_q4(int32_t a) {
    if (a == 0)
        return 1 << 30; /* one half */
    const int32_t magnitude = a > 0 ? a : -a;
    const int32_t positive = one_over_one_plus_x(exp_on_negative_values(-magnitude, 4));
    return a > 0 ? positive : INT32_MAX - positive;
}

atomsim_status atomsim_net_logistic_s8(const int32_t *params, const atomsim_dims *dims,
                                       const int8_t *input, int8_t *output) {
    const int32_t zero_point = params[0], radius = params[1], multiplier = params[2],
                  shift = params[3];
    const int32_t size = dims->n * dims->h * dims->w * dims->c;
    if (size < 1 || radius < 0 || shift < -31 || shift > 31)
        return ATOMSIM_ARG_ERROR;
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    for (int32_t i = 0; i < size; i++) {
        const int32_t v = input[i] - zero_point;
        int32_t y;
        if (v <= -radius) {
            y = -128;
        } else if (v >= radius) {
            y = 127;
        } else { /* |v| < radius: v * 2^left stays below 15 * 2^27 */
            const int32_t a =
                rdbpot(srdhm((int32_t)((uint32_t)v << left), multiplier), right); /* Q4.27 */
            y = rdbpot(logistic_q4(a), 31 - 8) - 128;
            y = y < -128 ? -128 : (y > 127 ? 127 : y);
        }
        output[i] = (int8_t)y;
    }
    return ATOMSIM_OK;
}
#endif
