"""What a bundle needs to know about a .tflite step model, read from its flatbuffer (no interpreter, no TensorFlow):
the operators it uses, its input/output quantisation, and its state variables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.errors import HarError

TENSOR_TYPES = {0: ("float32", 4), 2: ("int32", 4), 6: ("bool", 1), 9: ("int8", 1), 7: ("int16", 2), 3: ("uint8", 1)}


@dataclass(frozen=True)
class Quant:
    dtype: str
    scale: float  # x = scale (q - zero_point); 0 for float tensors
    zero_point: int


@dataclass(frozen=True)
class StateVariable:
    name: str
    size: int  # elements
    dtype: str
    read_quant: Quant | None  # the int8 quantisation applied after READ_VARIABLE, when there is one

    @property
    def bytes(self) -> int:
        return self.size * dict(TENSOR_TYPES.values())[self.dtype]


@dataclass(frozen=True)
class StepModelInfo:
    ops: tuple[str, ...]  # builtin operator names used anywhere in the model, sorted
    main_operators: int  # operators run per invocation of the main subgraph
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_quant: Quant
    output_quant: Quant
    states: tuple[StateVariable, ...]
    size_bytes: int

    @property
    def state_bytes(self) -> int:
        return sum(s.bytes for s in self.states)


def _schema():
    import ai_edge_litert.schema_py_generated as schema

    return schema


def _quant(tensor) -> Quant:
    dtype = TENSOR_TYPES.get(tensor.type, (f"type{tensor.type}", 0))[0]
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return Quant(dtype, 0.0, 0)
    return Quant(dtype, float(q.scale[0]), int(q.zeroPoint[0]))


def _op_name(schema, model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)  # codes >= 127 live only in builtinCode
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(number, f"BUILTIN_{number}")


def read_model(data: bytes):
    """The flatbuffer as the schema's object tree (ModelT)."""
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise HarError("not a .tflite model (no TFL3 identifier)", 1)
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def inspect_step_model(data: bytes) -> StepModelInfo:
    schema = _schema()
    model = read_model(data)
    main = model.subgraphs[0]
    if len(main.inputs) != 1 or len(main.outputs) != 1:
        raise HarError(f"expected a step model with one input and one output, got {len(main.inputs)} inputs and "
                       f"{len(main.outputs)} outputs", 1)
    ops = sorted({_op_name(schema, model, op) for g in model.subgraphs for op in g.operators})
    consumers: dict[int, list] = {}
    for op in main.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(op)
    states = []
    for op in main.operators:
        if _op_name(schema, model, op) != "READ_VARIABLE":
            continue
        value = main.tensors[op.outputs[0]]
        quantize = [c for c in consumers.get(int(op.outputs[0]), []) if _op_name(schema, model, c) == "QUANTIZE"]
        read_quant = _quant(main.tensors[quantize[0].outputs[0]]) if quantize else None
        states.append(StateVariable(value.name.decode(), int(np.prod(value.shape)), _quant(value).dtype, read_quant))
    tin, tout = main.tensors[main.inputs[0]], main.tensors[main.outputs[0]]
    return StepModelInfo(tuple(ops), len(main.operators), tuple(int(v) for v in tin.shape),
                         tuple(int(v) for v in tout.shape), _quant(tin), _quant(tout), tuple(states), len(data))
