"""Python mirrors of every ``atomsim_*_get_buffer_size()`` in firmware/kernels.

Each function takes the C function's dims arguments as ``(n, h, w, c)`` tuples plus the kernel
variant (the folder the build took the kernel from). Scratch needs differ between variants:
the reference kernels need none; the Cortex-M DSP kernels stage q15 copies of their inputs.
A kernel that needs no scratch in any variant uses ``no_scratch``. Each operator's record in
atomsim.nn.registry names its mirror; tests/test_kernels_host.py checks every mirror against
its C function on every shape case.
"""

from __future__ import annotations

from atomsim.core.errors import ConfigError

Dims = tuple[int, int, int, int]
VARIANTS = ("reference", "cortex_m_dsp")


def _check(variant: str) -> bool:
    """True for the DSP variant; raise for an unknown one."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {variant!r}: expected one of {VARIANTS}")
    return variant == "cortex_m_dsp"


def conv_s8_get_buffer_size(input_dims: Dims, filter_dims: Dims, output_dims: Dims,
                            variant: str = "reference") -> int:
    """im2col: 2 int8 columns of K = KH*KW*C_IN (4-byte rounded) + 2 q15 columns of even K."""
    if not _check(variant):
        return 0
    _, kh, kw, c_in = filter_dims
    k = kh * kw * c_in
    return ((2 * k + 3) & ~3) + 4 * ((k + 1) & ~1)


def depthwise_conv_s8_get_buffer_size(input_dims: Dims, filter_dims: Dims, output_dims: Dims,
                                      variant: str = "reference") -> int:
    """One int32 per channel: bias + input_offset * sum of that channel's weights."""
    return 4 * input_dims[3] if _check(variant) else 0


def pointwise_conv_s8_get_buffer_size(input_dims: Dims, filter_dims: Dims, output_dims: Dims,
                                      variant: str = "reference") -> int:
    """Two input pixels as q15 columns of C_IN int16, each rounded to an even count."""
    return 4 * ((input_dims[3] + 1) & ~1) if _check(variant) else 0


def fully_connected_s8_get_buffer_size(input_dims: Dims, filter_dims: Dims, output_dims: Dims,
                                       variant: str = "reference") -> int:
    """One input row as q15, 4-byte rounded."""
    if not _check(variant):
        return 0
    _, h, w, c = input_dims
    return (2 * h * w * c + 3) & ~3


def no_scratch(*dims: Dims, variant: str = "reference") -> int:
    """The mirror of every get_buffer_size that is 0 in all variants (pad, add, mul, pooling,
    global pooling, the standalone activations); the host test holds it to each C function."""
    _check(variant)
    return 0
