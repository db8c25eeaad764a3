"""Integer-exact numpy references of AtomSim's int8 atom kernels (firmware/kernels).

``quant``      TFLite fixed-point arithmetic and parameter builders (+ parameter records whose
               field order is the C structs' order in atomsim_nn.h);
``reference``  one function per kernel, bit-identical to the C kernels;
``buffers``    mirrors of the C ``*_get_buffer_size()`` functions, per kernel variant;
``cases``      ``KernelCall`` (one concrete kernel invocation) and every operator's named shape
               cases with their data generator.
atomsim.nn.registry ties them together, one record per operator.
"""

from atomsim.nn.ops import buffers, cases
from atomsim.nn.ops.quant import (
    AddParams,
    ConvParams,
    FcParams,
    GlobalPoolParams,
    HardSwishParams,
    MulParams,
    PadParams,
    PoolParams,
    ReluParams,
    activation_range,
    add_quant_params,
    conv_output_size,
    hard_sigmoid_lut,
    hard_swish_quant_params,
    implied_pad_after,
    mbqm,
    mul_quant_params,
    multiply_by_quantized_multiplier,
    per_channel_multipliers,
    quantize_multiplier,
    rdbpot,
    relu_quant_params,
    requantize,
    srdhm,
)
from atomsim.nn.ops.reference import (
    add_s8,
    avgpool_s8,
    conv_s8,
    depthwise_conv_s8,
    fully_connected_s8,
    global_avgpool_s8,
    hard_sigmoid_s8,
    hard_swish_s8,
    maxpool_s8,
    mul_s8,
    pad_s8,
    pointwise_conv_s8,
    relu_s8,
)

__all__ = [
    "AddParams", "ConvParams", "FcParams", "GlobalPoolParams", "HardSwishParams",
    "MulParams", "PadParams", "PoolParams", "ReluParams", "activation_range",
    "add_quant_params", "add_s8",
    "avgpool_s8", "buffers", "cases", "conv_output_size", "conv_s8", "depthwise_conv_s8",
    "fully_connected_s8", "global_avgpool_s8", "hard_sigmoid_lut", "hard_sigmoid_s8",
    "hard_swish_quant_params", "hard_swish_s8", "implied_pad_after", "maxpool_s8", "mbqm",
    "mul_quant_params", "mul_s8", "multiply_by_quantized_multiplier", "pad_s8",
    "per_channel_multipliers", "pointwise_conv_s8", "quantize_multiplier", "rdbpot",
    "relu_quant_params", "relu_s8", "requantize", "srdhm",
]
