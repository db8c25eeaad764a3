/*
 * atomsim_nn.h - the one contract for AtomSim's int8 atom-operator kernels.
 *
 * Two implementations share these names and signatures (see ../README.md):
 *   reference/     portable C, also compiles on the host (the tests call it via ctypes);
 *   cortex_m_dsp/  Cortex-M4/M7 with the DSP extension (SMLAD & co.), bit-identical output.
 * atomsim/ops/ holds the integer-exact numpy reference of every kernel and a Python mirror of
 * every *_get_buffer_size() function.
 *
 * Conventions shared by every kernel
 * ----------------------------------
 * Layout      Activation tensors are int8 NHWC, "[N, H, W, C]", densely packed, N == 1 unless
 *             a kernel says otherwise. Conv filters are [C_OUT, KH, KW, C_IN]; depthwise filters
 *             are [1, KH, KW, C] (depth multiplier 1); fully-connected weights are
 *             [C_OUT, ACCUM_DEPTH]. Bias is int32 [C_OUT] and may be NULL (read as zeros).
 * Quantization  TFLite int8 semantics. real = scale * (q - zero_point). Weights are symmetric
 *             (zero point 0). An offset is what the kernel adds to a raw value:
 *             input_offset = -input_zero_point, range [-127, 128];
 *             output_offset = +output_zero_point, range [-128, 127].
 * Requantization  An int32 accumulator becomes an int8 output as TFLite does it:
 *             out = clamp(MBQM(acc, multiplier, shift) + output_offset, act_min, act_max)
 *             where MBQM is TFLite's MultiplyByQuantizedMultiplier in its default
 *             "double rounding" form (TFLITE_SINGLE_ROUNDING unset, which is how TFLite Micro
 *             and CMSIS-NN build by default):
 *               left = max(shift, 0), right = max(-shift, 0)
 *               MBQM = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
 *                          acc * 2^left, multiplier), right)
 *             SaturatingRoundingDoublingHighMul(a, b) = (a * b + 2^30) >> 31 in 64 bits
 *             (saturating only for a == b == INT32_MIN); RoundingDivideByPOT rounds half
 *             away from zero. acc * 2^left wraps to int32 like TFLite's int32 product.
 *             multiplier is TFLite's QuantizeMultiplier() output: [0, 2^31 - 1] (normally
 *             [2^30, 2^31 - 1], 0 for a zero scale); shift is in [-31, 30].
 * Activation  act_min <= act_max, both in [-128, 127]; a fused ReLU / ReLU6 is expressed by
 *             them alone (act_min = output zero point, act_max = zp + round(6 / scale)).
 * Padding     pad_h / pad_w are the top / left padding. The bottom / right padding is implied
 *             by the output size: pad_bottom = (H_OUT - 1) * stride_h + KH - pad_h - H_IN
 *             (negative when trailing rows are never read). Both must be in [0, KH - 1]
 *             (top) and <= KH - 1 (bottom), so every window overlaps the input. Padded
 *             positions read the input zero point (they contribute nothing).
 * Scratch     Every kernel takes a scratch context first. Before the call, ctx->buf must point
 *             at ctx->size >= <kernel>_get_buffer_size(...) bytes, 4-byte aligned; it may be
 *             NULL when that size is 0. get_buffer_size functions are pure, depend only on
 *             shapes, and may differ between implementations (atomsim/ops mirrors each).
 *             Scratch contents are not preserved between calls.
 * Status      Every kernel returns ATOMSIM_OK, or ATOMSIM_ARG_ERROR without touching the
 *             output when a shape, parameter or scratch buffer breaks this contract.
 * Aliasing    Output buffers must not overlap inputs (except the elementwise kernels
 *             relu / hard_swish / hard_sigmoid, which allow output == input).
 */
#ifndef ATOMSIM_NN_H
#define ATOMSIM_NN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- shared types ---------- */

typedef enum {
    ATOMSIM_OK = 0,
    ATOMSIM_ARG_ERROR = -1,
} atomsim_status;

/* Tensor dimensions, NHWC. */
typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} atomsim_dims;

/* Scratch buffer handed to a kernel (see "Scratch" above). */
typedef struct {
    void *buf;
    int32_t size; /* bytes */
} atomsim_context;

/* One multiplier / shift per output channel (TFLite QuantizeMultiplier representation). */
typedef struct {
    const int32_t *multiplier; /* [C_OUT], each in [0, 2^31 - 1] */
    const int32_t *shift;      /* [C_OUT], each in [-31, 30]; < 0 shifts right */
} atomsim_per_channel_quant_params;

/* Convolution (normal, depthwise and pointwise). */
typedef struct {
    int32_t stride_h;      /* >= 1 */
    int32_t stride_w;      /* >= 1 */
    int32_t pad_h;         /* top padding, [0, KH - 1] */
    int32_t pad_w;         /* left padding, [0, KW - 1] */
    int32_t dilation_h;    /* must be 1 */
    int32_t dilation_w;    /* must be 1 */
    int32_t input_offset;  /* -input_zero_point, [-127, 128] */
    int32_t output_offset; /* output_zero_point, [-128, 127] */
    int32_t act_min;       /* [-128, 127] */
    int32_t act_max;       /* [act_min, 127] */
} atomsim_conv_params;

/* Average / max pooling. Input and output share scale and zero point (TFLite). */
typedef struct {
    int32_t stride_h; /* >= 1 */
    int32_t stride_w; /* >= 1 */
    int32_t pad_h;    /* top padding, [0, KH - 1] */
    int32_t pad_w;    /* left padding, [0, KW - 1] */
    int32_t act_min;  /* [-128, 127] */
    int32_t act_max;  /* [act_min, 127] */
} atomsim_pool_params;

/* Fully connected. */
typedef struct {
    int32_t input_offset;  /* -input_zero_point, [-127, 128] */
    int32_t output_offset; /* output_zero_point, [-128, 127] */
    int32_t act_min;       /* [-128, 127] */
    int32_t act_max;       /* [act_min, 127] */
    int32_t per_channel;   /* 0: multiplier[0] / shift[0] apply to every output (per-tensor) */
} atomsim_fc_params;

/* Spatial constant padding. */
typedef struct {
    int32_t pad_top;    /* >= 0 */
    int32_t pad_bottom; /* >= 0 */
    int32_t pad_left;   /* >= 0 */
    int32_t pad_right;  /* >= 0 */
    int32_t pad_value;  /* [-128, 127], normally the tensor's zero point */
} atomsim_pad_params;

/* Elementwise add, TFLite int8 Add: both inputs are rescaled to a common scale with
 * 2^left_shift headroom, summed, and the sum is rescaled to the output. */
typedef struct {
    int32_t left_shift;        /* [0, 20]; TFLite uses 20 for int8 */
    int32_t input1_offset;     /* -zero_point1, [-127, 128] */
    int32_t input1_multiplier; /* [0, 2^31 - 1] */
    int32_t input1_shift;      /* [-31, 0] */
    int32_t input2_offset;     /* -zero_point2, [-127, 128] */
    int32_t input2_multiplier; /* [0, 2^31 - 1] */
    int32_t input2_shift;      /* [-31, 0] */
    int32_t output_offset;     /* output zero point, [-128, 127] */
    int32_t output_multiplier; /* [0, 2^31 - 1] */
    int32_t output_shift;      /* [-31, 0] */
    int32_t act_min;           /* [-128, 127] */
    int32_t act_max;           /* [act_min, 127] */
} atomsim_add_params;

/* Elementwise / broadcast multiply, TFLite int8 Mul:
 * out = clamp(MBQM((x1 + input1_offset) * (x2 + input2_offset), m, s) + output_offset). */
typedef struct {
    int32_t input1_offset;     /* -zero_point1, [-127, 128] */
    int32_t input2_offset;     /* -zero_point2, [-127, 128] */
    int32_t output_offset;     /* output zero point, [-128, 127] */
    int32_t output_multiplier; /* [0, 2^31 - 1] */
    int32_t output_shift;      /* [-31, 30] */
    int32_t act_min;           /* [-128, 127] */
    int32_t act_max;           /* [act_min, 127] */
} atomsim_mul_params;

/* Standalone ReLU / ReLU6, TFLite int8 ReluQuantized (input and output scales may differ):
 * out = clamp(MBQM(x + input_offset, multiplier, shift) + output_offset, act_min, act_max).
 * ReLU: act_min = output zero point, act_max = 127. ReLU6: act_max = zp + round(6 / scale). */
typedef struct {
    int32_t input_offset;  /* -input_zero_point, [-127, 128] */
    int32_t output_offset; /* output zero point, [-128, 127] */
    int32_t multiplier;    /* input_scale / output_scale, [0, 2^31 - 1] */
    int32_t shift;         /* [-31, 30] */
    int32_t act_min;       /* [-128, 127] */
    int32_t act_max;       /* [act_min, 127] */
} atomsim_relu_params;

/* Hard-swish, TFLite's int8 reference algorithm and parameter set (zero points, not offsets,
 * as TFLite's HardSwishParams carry them). The int16 fixed-point multipliers are TFLite's
 * QuantizeMultiplier() output rounded to 16 bits (DownScaleInt32ToInt16Multiplier):
 *   reluish:  (input_scale / 128) / (3 / 32768)
 *   output:   (input_scale / 128) / output_scale          (its exponent must be <= 0)
 * Exponents are limited to 15 in magnitude: beyond that the int16 gemmlowp primitives
 * overflow or change meaning, and no realistic pair of scales gets there. */
typedef struct {
    int32_t input_zero_point;                    /* [-128, 127] */
    int32_t output_zero_point;                   /* [-128, 127] */
    int32_t reluish_multiplier_fixedpoint_int16; /* [0, 32767] */
    int32_t reluish_multiplier_exponent;         /* [-15, 15] */
    int32_t output_multiplier_fixedpoint_int16;  /* [0, 32767] */
    int32_t output_multiplier_exponent;          /* [-15, 0] */
} atomsim_hard_swish_params;

/* ---------------------------------------------------------------- kernels --------------- */

/* Constant pad. input [1, H, W, C] -> output [1, H + top + bottom, W + left + right, C]. */
atomsim_status atomsim_pad_s8(const atomsim_context *ctx, const atomsim_pad_params *params,
                              const atomsim_dims *input_dims, const int8_t *input,
                              const atomsim_dims *output_dims, int8_t *output);
int32_t atomsim_pad_s8_get_buffer_size(const atomsim_dims *input_dims,
                                       const atomsim_dims *output_dims);

/* Normal convolution (groups = 1), any KH x KW, any stride, dilation 1.
 * input [1, H, W, C_IN], filter_dims {C_OUT, KH, KW, C_IN}, output [1, H_OUT, W_OUT, C_OUT]. */
atomsim_status atomsim_conv_s8(const atomsim_context *ctx, const atomsim_conv_params *params,
                               const atomsim_per_channel_quant_params *quant,
                               const atomsim_dims *input_dims, const int8_t *input,
                               const atomsim_dims *filter_dims, const int8_t *filter,
                               const int32_t *bias, const atomsim_dims *output_dims,
                               int8_t *output);
int32_t atomsim_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                        const atomsim_dims *filter_dims,
                                        const atomsim_dims *output_dims);

/* Depthwise convolution (groups = C, depth multiplier 1).
 * input [1, H, W, C], filter_dims {1, KH, KW, C}, output [1, H_OUT, W_OUT, C]. */
atomsim_status atomsim_depthwise_conv_s8(const atomsim_context *ctx,
                                         const atomsim_conv_params *params,
                                         const atomsim_per_channel_quant_params *quant,
                                         const atomsim_dims *input_dims, const int8_t *input,
                                         const atomsim_dims *filter_dims, const int8_t *filter,
                                         const int32_t *bias, const atomsim_dims *output_dims,
                                         int8_t *output);
int32_t atomsim_depthwise_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                  const atomsim_dims *filter_dims,
                                                  const atomsim_dims *output_dims);

/* Pointwise (1x1) convolution, any stride, no padding (pad_h == pad_w == 0).
 * input [1, H, W, C_IN], filter_dims {C_OUT, 1, 1, C_IN}, output [1, H_OUT, W_OUT, C_OUT]. */
atomsim_status atomsim_pointwise_conv_s8(const atomsim_context *ctx,
                                         const atomsim_conv_params *params,
                                         const atomsim_per_channel_quant_params *quant,
                                         const atomsim_dims *input_dims, const int8_t *input,
                                         const atomsim_dims *filter_dims, const int8_t *filter,
                                         const int32_t *bias, const atomsim_dims *output_dims,
                                         int8_t *output);
int32_t atomsim_pointwise_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                  const atomsim_dims *filter_dims,
                                                  const atomsim_dims *output_dims);

/* Fully connected. input_dims {N, H, W, C} is read as N rows of ACCUM = H * W * C values;
 * filter_dims {C_OUT, 1, 1, ACCUM}; output [N, 1, 1, C_OUT]. quant holds C_OUT entries, or
 * one entry when params->per_channel == 0. */
atomsim_status atomsim_fully_connected_s8(const atomsim_context *ctx,
                                          const atomsim_fc_params *params,
                                          const atomsim_per_channel_quant_params *quant,
                                          const atomsim_dims *input_dims, const int8_t *input,
                                          const atomsim_dims *filter_dims, const int8_t *filter,
                                          const int32_t *bias, const atomsim_dims *output_dims,
                                          int8_t *output);
int32_t atomsim_fully_connected_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                   const atomsim_dims *filter_dims,
                                                   const atomsim_dims *output_dims);

/* Elementwise add of two [1, H, W, C] tensors (same dims). */
atomsim_status atomsim_add_s8(const atomsim_context *ctx, const atomsim_add_params *params,
                              const atomsim_dims *dims, const int8_t *input1,
                              const int8_t *input2, int8_t *output);
int32_t atomsim_add_s8_get_buffer_size(const atomsim_dims *dims);

/* Multiply. input1 [1, H, W, C]; input2 either the same dims (elementwise) or [1, 1, 1, C]
 * (one value per channel broadcast over H and W, as squeeze-and-excitation needs).
 * output has input1's dims. */
atomsim_status atomsim_mul_s8(const atomsim_context *ctx, const atomsim_mul_params *params,
                              const atomsim_dims *input1_dims, const int8_t *input1,
                              const atomsim_dims *input2_dims, const int8_t *input2,
                              int8_t *output);
int32_t atomsim_mul_s8_get_buffer_size(const atomsim_dims *input1_dims,
                                       const atomsim_dims *input2_dims);

/* Average pooling, TFLite reference: the mean over the window's in-bounds elements only
 * (padding is not counted), rounded half away from zero, then clamped.
 * filter_dims {1, KH, KW, 1}; input [1, H, W, C]; output [1, H_OUT, W_OUT, C]. */
atomsim_status atomsim_avgpool_s8(const atomsim_context *ctx, const atomsim_pool_params *params,
                                  const atomsim_dims *input_dims, const int8_t *input,
                                  const atomsim_dims *filter_dims,
                                  const atomsim_dims *output_dims, int8_t *output);
int32_t atomsim_avgpool_s8_get_buffer_size(const atomsim_dims *output_dims);

/* Max pooling over the window's in-bounds elements, then clamped. Same layout as avgpool. */
atomsim_status atomsim_maxpool_s8(const atomsim_context *ctx, const atomsim_pool_params *params,
                                  const atomsim_dims *input_dims, const int8_t *input,
                                  const atomsim_dims *filter_dims,
                                  const atomsim_dims *output_dims, int8_t *output);
int32_t atomsim_maxpool_s8_get_buffer_size(const atomsim_dims *output_dims);

/* Global average pooling, defined as atomsim_avgpool_s8 with a full H x W window, stride 1,
 * no padding (same rounding, input and output share scale and zero point).
 * input [1, H, W, C] -> output [1, 1, 1, C]. H * W <= 2^16 (the int32 sum cannot overflow). */
atomsim_status atomsim_global_avgpool_s8(const atomsim_context *ctx, int32_t act_min,
                                         int32_t act_max, const atomsim_dims *input_dims,
                                         const int8_t *input, int8_t *output);
int32_t atomsim_global_avgpool_s8_get_buffer_size(const atomsim_dims *input_dims);

/* Standalone ReLU / ReLU6 (see atomsim_relu_params). Any dims; output may equal input. */
atomsim_status atomsim_relu_s8(const atomsim_context *ctx, const atomsim_relu_params *params,
                               const atomsim_dims *dims, const int8_t *input, int8_t *output);
int32_t atomsim_relu_s8_get_buffer_size(const atomsim_dims *dims);

/* Hard-swish x * relu6(x + 3) / 6, TFLite int8 reference algorithm. Output may equal input. */
atomsim_status atomsim_hard_swish_s8(const atomsim_context *ctx,
                                     const atomsim_hard_swish_params *params,
                                     const atomsim_dims *dims, const int8_t *input,
                                     int8_t *output);
int32_t atomsim_hard_swish_s8_get_buffer_size(const atomsim_dims *dims);

/* Hard-sigmoid relu6(x + 3) / 6 through a 256-entry table built on the host
 * (atomsim.ops.hard_sigmoid_lut): out = lut[x + 128]. Output may equal input. */
atomsim_status atomsim_hard_sigmoid_s8(const atomsim_context *ctx, const int8_t *lut,
                                       const atomsim_dims *dims, const int8_t *input,
                                       int8_t *output);
int32_t atomsim_hard_sigmoid_s8_get_buffer_size(const atomsim_dims *dims);

/* ---------------------------------------------------------------- kernel list ----------- */

/* Every kernel once, for the profiling harness: X(NAME, name, ARGS). The harness derives its
 * op ids (ATOMSIM_OP_<NAME>, numbered from 1 in this order) and its dispatch from this list;
 * ARGS names the argument pattern (one ATOMSIM_CALL_<ARGS> in firmware/harness/harness.c).
 * The host reads the ids from the harness's DWARF; `name` is the operator's name in
 * atomsim/nn/registry.py. Append new kernels at the end (ids stay stable). */
#define ATOMSIM_KERNELS(X)                                                                     \
    X(PAD, pad, PAD)                                                                           \
    X(CONV, conv, CONV)                                                                        \
    X(DEPTHWISE_CONV, depthwise_conv, CONV)                                                    \
    X(POINTWISE_CONV, pointwise_conv, CONV)                                                    \
    X(FULLY_CONNECTED, fully_connected, CONV)                                                  \
    X(ADD, add, BINARY)                                                                        \
    X(MUL, mul, BROADCAST)                                                                     \
    X(AVGPOOL, avgpool, POOL)                                                                  \
    X(MAXPOOL, maxpool, POOL)                                                                  \
    X(GLOBAL_AVGPOOL, global_avgpool, RANGE)                                                   \
    X(RELU, relu, UNARY)                                                                       \
    X(HARD_SWISH, hard_swish, UNARY)                                                           \
    X(HARD_SIGMOID, hard_sigmoid, TABLE)

#ifdef __cplusplus
}
#endif

#endif /* ATOMSIM_NN_H */
