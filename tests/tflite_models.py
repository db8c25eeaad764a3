"""Int8 .tflite models built in tests, and TensorFlow Lite Micro runs of them.

One builder for the single-operator models of tests/test_tflm_reference.py and the whole
graphs of tests/test_network_reference.py: the flatbuffers object API of the schema module that
ships with tflite_micro. Import this only after ``pytest.importorskip("tflite_micro")``.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite_micro
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl


class TfliteModel:
    """A one-subgraph .tflite under construction: tensors, then operators, then ``build``."""

    def __init__(self) -> None:
        self.tensors: list = []
        self.buffers = [tfl.BufferT()]  # buffer 0: the empty sentinel TFLite expects
        self.ops: list = []
        self.codes: dict[int, int] = {}  # builtin operator -> opcode index

    def tensor(self, shape, dtype: int, scale=None, zero_point=None, data=None,
               axis: int = 0) -> int:
        """Add a tensor (constant when data is given); scale / zero_point may be per-axis."""
        t = tfl.TensorT()
        t.shape, t.type, t.name = list(shape), dtype, f"t{len(self.tensors)}"
        if data is not None:
            buf = tfl.BufferT()
            buf.data = np.ascontiguousarray(data).tobytes()
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            qp = tfl.QuantizationParametersT()
            qp.scale = [float(s) for s in np.atleast_1d(scale)]
            qp.zeroPoint = [int(z) for z in np.broadcast_to(zero_point, len(qp.scale))]
            qp.quantizedDimension = axis
            t.quantization = qp
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, builtin: int, inputs, outputs, options_type: int = 0, options=None) -> None:
        """Append an operator (executed in the order added)."""
        if builtin not in self.codes:
            self.codes[builtin] = len(self.codes)
        o = tfl.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[builtin], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def build(self, inputs, outputs) -> bytes:
        """Serialise the model with these graph inputs and outputs."""
        codes = []
        for builtin in self.codes:
            c = tfl.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), 1
            codes.append(c)
        sub = tfl.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs, sub.operators = (self.tensors, list(inputs),
                                                               list(outputs), self.ops)
        model = tfl.ModelT()
        model.version, model.operatorCodes, model.subgraphs = 3, codes, [sub]
        model.buffers = self.buffers
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def single_op(self, builtin: int, inputs, outputs, options_type: int = 0,
                  options=None) -> bytes:
        """A model of one operator; its graph inputs are the operator's non-constant inputs."""
        self.op(builtin, inputs, outputs, options_type, options)
        return self.build([i for i in inputs if i >= 0 and self.tensors[i].buffer == 0], outputs)


def run_tflm(model: bytes, *inputs: np.ndarray, outputs: int = 1) -> list[np.ndarray]:
    """Run a model once in tflite_micro's interpreter; returns its first ``outputs`` outputs."""
    interp = tflite_micro.runtime.Interpreter.from_bytes(model, arena_size=4 << 20)
    for i, x in enumerate(inputs):
        interp.set_input(np.asarray(x).reshape(interp.get_input_details(i)["shape"]), i)
    interp.invoke()
    # Copy before the interpreter (and its arena, which an output may view) is freed.
    got = [np.array(interp.get_output(i), copy=True) for i in range(outputs)]
    del interp
    return got


def assert_same(tflm: np.ndarray, numpy: np.ndarray, what: str) -> None:
    """TFLite Micro's tensor equals ours, or the first difference is named."""
    tflm = np.asarray(tflm).reshape(numpy.shape)
    bad = np.argwhere(tflm != numpy)
    assert bad.size == 0, (f"{what}: {len(bad)} of {numpy.size} differ; first at "
                           f"{tuple(bad[0])}: TFLM {tflm[tuple(bad[0])]}, numpy "
                           f"{numpy[tuple(bad[0])]}")
