"""What `har` needs to know about a .tflite step model, read from its flatbuffer (no interpreter, no TensorFlow):
its signatures (`step`, which must be subgraph 0 because TFLM invokes subgraph 0, and `zero_state`), the operators
of every subgraph, the step's input/output quantisation and its state variables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.errors import ExitCode, HarError

STEP_SIGNATURE, RESET_SIGNATURE = "step", "zero_state"  # x_t -> spikes; flag -> done, zeroing every state variable
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
    ops: tuple[str, ...]  # builtin operator names of every subgraph, sorted (TFLM prepares them all)
    main_operators: int  # operators run per invocation of the `step` subgraph (subgraph 0, what TFLM invokes)
    signatures: tuple[str, ...]
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


def _op_namer(schema, model):
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def name(op) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        number = max(code.builtinCode, code.deprecatedBuiltinCode)  # codes >= 127 live only in builtinCode
        return names.get(number, f"BUILTIN_{number}")

    return name


def read_model(data: bytes):
    """The flatbuffer as the schema's object tree (ModelT); anything else raises HarError."""
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise HarError("not a .tflite model (no TFL3 identifier)", ExitCode.FAILURE)
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # the flatbuffer reader raises assorted errors on a damaged file
        raise HarError(f"corrupt or truncated .tflite model ({len(data)} bytes; {type(exc).__name__})",
                       ExitCode.FAILURE) from None


def _step_subgraph(model):
    """The subgraph of the `step` signature; it must be subgraph 0, the one TFLM invokes."""
    signatures = {s.signatureKey.decode(): s.subgraphIndex for s in model.signatureDefs or []}
    missing = [name for name in (STEP_SIGNATURE, RESET_SIGNATURE) if name not in signatures]
    if missing:
        raise HarError(f"not a har step model: no {' or '.join(missing)} signature (re-export it with "
                       "`har train --compress int8`)", ExitCode.FAILURE)
    if signatures[STEP_SIGNATURE] != 0:
        raise HarError(f"the step signature is subgraph {signatures[STEP_SIGNATURE]}, but TFLM invokes subgraph 0",
                       ExitCode.FAILURE)
    return model.subgraphs[0], tuple(sorted(signatures))


def _states(main, op_name) -> tuple[StateVariable, ...]:
    """The resource variables the step reads, named by their VAR_HANDLE shared name."""
    handles = {int(op.outputs[0]): op.builtinOptions.sharedName.decode()
               for op in main.operators if op_name(op) == "VAR_HANDLE"}
    consumers: dict[int, list] = {}
    for op in main.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(op)
    states = {}
    for op in main.operators:
        if op_name(op) != "READ_VARIABLE":
            continue
        value = main.tensors[op.outputs[0]]
        quantize = [c for c in consumers.get(int(op.outputs[0]), []) if op_name(c) == "QUANTIZE"]
        read_quant = _quant(main.tensors[quantize[0].outputs[0]]) if quantize else None
        name = handles.get(int(op.inputs[0]), value.name.decode())
        states[name] = StateVariable(name, int(np.prod(value.shape)), _quant(value).dtype, read_quant)
    return tuple(states.values())


def inspect_step_model(data: bytes) -> StepModelInfo:
    model = read_model(data)
    op_name = _op_namer(_schema(), model)
    main, signatures = _step_subgraph(model)
    if len(main.inputs) != 1 or len(main.outputs) != 1:
        raise HarError(f"expected a step model with one input and one output, got {len(main.inputs)} inputs and "
                       f"{len(main.outputs)} outputs", ExitCode.FAILURE)
    ops = sorted({op_name(op) for g in model.subgraphs for op in g.operators or []})
    tin, tout = main.tensors[main.inputs[0]], main.tensors[main.outputs[0]]
    return StepModelInfo(tuple(ops), len(main.operators), signatures, tuple(int(v) for v in tin.shape),
                         tuple(int(v) for v in tout.shape), _quant(tin), _quant(tout), _states(main, op_name),
                         len(data))
