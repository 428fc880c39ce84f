"""What is inside a .tflite: builtin op names of every subgraph, read from the flatbuffer (TF's schema)."""

from __future__ import annotations

from training.errors import HarError

# TFLM builtins that the step graph may use (toolchain.md section 5, trap 13: present in TFLM).
TFLM_BUILTINS = frozenset({
    "FULLY_CONNECTED", "BATCH_MATMUL", "ADD", "SUB", "MUL", "DIV", "GREATER", "GREATER_EQUAL", "SELECT_V2", "CAST",
    "QUANTIZE", "DEQUANTIZE", "STRIDED_SLICE", "SLICE", "PACK", "UNPACK", "CONCATENATION", "RESHAPE", "GATHER",
    "WHILE", "IF", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "SUM", "MEAN",
})


def model_ops(model: bytes) -> list[str]:
    """Sorted builtin op names used anywhere in the model; a corrupt file raises HarError."""
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
        used = {codes[op.opcodeIndex] for g in m.subgraphs for op in (g.operators or [])}
    except Exception as exc:  # the flatbuffer reader raises assorted errors on garbage
        raise HarError(f"corrupt .tflite: {type(exc).__name__}", 1) from None
    return sorted(names[c] for c in used)
