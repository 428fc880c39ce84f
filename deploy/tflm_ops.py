"""Which builtin operators TensorFlow Lite Micro has kernels for, and the MicroMutableOpResolver method that
registers each (docs/toolchain.md, "TFLM operator coverage")."""

from __future__ import annotations

from collections.abc import Iterable

from training.errors import ExitCode, HarError

TFLM_KERNELS = frozenset({
    "ABS", "ADD", "ASSIGN_VARIABLE", "BATCH_MATMUL", "CALL_ONCE", "CAST", "CONCATENATION", "CONV_2D",
    "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "EQUAL", "EXP", "FULLY_CONNECTED", "GATHER", "GREATER",
    "GREATER_EQUAL", "IF", "LESS", "LESS_EQUAL", "LOGISTIC", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "NOT_EQUAL",
    "PACK", "QUANTIZE", "READ_VARIABLE", "RELU", "RESHAPE", "SELECT_V2", "SLICE", "SQRT", "SQUARE", "STRIDED_SLICE",
    "SUB", "SUM", "SVDF", "TANH", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE", "WHILE",
})
# Add* methods whose names are not the CamelCase of the operator name
RESOLVER_NAMES = {"BATCH_MATMUL": "BatchMatMul", "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
                  "SVDF": "Svdf", "CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D",
                  "MAX_POOL_2D": "MaxPool2D", "AVERAGE_POOL_2D": "AveragePool2D"}
NO_TFLM_KERNEL = 3  # exit code: the model cannot run on an MCU


def resolver_method(op: str) -> str:
    return "Add" + RESOLVER_NAMES.get(op, "".join(part.capitalize() for part in op.split("_")))


def require_tflm_ops(ops: Iterable[str]) -> None:
    missing = sorted(set(ops) - TFLM_KERNELS)
    if missing:
        raise HarError(f"TFLM has no kernel for {', '.join(missing)}: this model cannot run on an MCU",
                       ExitCode.DOMAIN)
