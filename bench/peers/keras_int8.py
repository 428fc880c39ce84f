"""What the Keras peers share: training with the L2MU's recipe (Adam, cosine decay, the same augmentation,
early stopping on validation accuracy), full-integer int8 conversion as a TFLite user does it (a fixed batch-1
`tf.function`, builtin int8 ops; docs/toolchain.md), and one LiteRT invoke per window."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bench.contender import Contender, Workload
from bench.protocol import AUGMENT_DEG, BATCH_SIZE, LR, SEED, WINDOW, Fold, Settings
from deploy.step_runtimes import QuantizedIO
from deploy.tf_env import import_tensorflow
from deploy.tflite_model import read_model
from training.augment import augment

CHANNELS = 6


def _batches(fold: Fold):
    """Augmented, normalised training batches, reshuffled every epoch: the L2MU's per-batch recipe."""
    tf = import_tensorflow()

    class AugmentedBatches(tf.keras.utils.Sequence):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(SEED)
            self.order = self.rng.permutation(len(fold.train_raw))

        def __len__(self) -> int:
            return math.ceil(len(self.order) / BATCH_SIZE)

        def __getitem__(self, i: int):
            idx = self.order[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]
            x = augment(fold.train_raw.x[idx], self.rng, AUGMENT_DEG) if AUGMENT_DEG > 0 else fold.train_raw.x[idx]
            return fold.norm.apply(x), fold.train_raw.y[idx]

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(self.order))

    return AugmentedBatches()


def fit(model, fold: Fold, settings: Settings) -> int:
    """Train in place; the best-validation weights are kept. Returns the epochs run."""
    tf = import_tensorflow()
    batches = _batches(fold)
    schedule = tf.keras.optimizers.schedules.CosineDecay(LR, settings.epochs * len(batches))
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    stop = tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=settings.patience,
                                            restore_best_weights=True)
    history = model.fit(batches, epochs=settings.epochs, validation_data=(fold.val.x, fold.val.y), callbacks=[stop],
                        verbose=0)
    return len(history.history["loss"])


def to_int8(model, calibration: np.ndarray) -> bytes:
    """Full-integer int8 .tflite of `model` at batch 1, calibrated on normalised windows (N, T, 6)."""
    tf = import_tensorflow()
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((1, WINDOW, CHANNELS), tf.float32, name="x")])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([w[None].astype(np.float32)] for w in calibration)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def calibration_windows(fold: Fold, n: int) -> np.ndarray:
    pick = np.sort(np.random.default_rng(SEED).choice(len(fold.train_raw), min(n, len(fold.train_raw)), replace=False))
    return fold.train.x[pick]


def graph_operators(model: bytes) -> list[str]:
    """Builtin operator names of subgraph 0 in execution order: what the interpreter dispatches per invoke."""
    import ai_edge_litert.schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    flat = read_model(model)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in flat.operatorCodes]
    return [names.get(codes[op.opcodeIndex], "CUSTOM") for op in flat.subgraphs[0].operators]


class LiteRTWindow:
    """The int8 model on LiteRT (one thread): quantise a normalised window, one invoke, argmax of the logits."""

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_content=model, num_threads=1)
        self.it.allocate_tensors()
        inp, out = self.it.get_input_details()[0], self.it.get_output_details()[0]
        self.io, self.inp, self.out = QuantizedIO(inp, out), inp["index"], out["index"]

    def decide(self, z: np.ndarray) -> int:
        self.it.set_tensor(self.inp, self.io.quantize(z))
        self.it.invoke()
        return int(np.argmax(self.it.get_tensor(self.out)[0]))  # int8 logits: same argmax as dequantised

    def predict(self, zs: np.ndarray) -> np.ndarray:
        return np.array([self.decide(z) for z in zs])


def keras_workload(model, ops: int) -> Workload:
    """MACs and elementwise operations of one window from the layer shapes (bias, activation, pooling and the
    LSTM gate arithmetic counted as elementwise)."""
    tf = import_tensorflow()
    layers = tf.keras.layers
    macs = elementwise = 0
    for layer in model.layers:
        if not isinstance(layer, (layers.LSTM, layers.Conv1D, layers.MaxPooling1D, layers.Dense)):
            continue  # input, reshaping and dropout layers compute nothing at inference
        cin, out = layer.input_shape[-1], layer.output_shape
        activated = getattr(layer, "activation", None) not in (None, tf.keras.activations.linear)
        if isinstance(layer, layers.LSTM):
            h, steps = layer.units, layer.input_shape[1]
            macs += steps * 4 * h * (cin + h)  # [i f g o] = W x_t + U h_{t-1} + b
            elementwise += steps * 13 * h  # 4h bias, 4h gate activations, c = f c + i g (3h), h = o tanh(c) (2h)
        elif isinstance(layer, layers.Conv1D):
            length, filters = out[1], out[2]
            macs += length * filters * layer.kernel_size[0] * cin
            elementwise += length * filters * (1 + activated)
        elif isinstance(layer, layers.MaxPooling1D):
            elementwise += out[1] * out[2] * layer.pool_size[0]
        elif isinstance(layer, layers.Dense):
            macs += cin * layer.units
            elementwise += layer.units * (1 + activated)
    return Workload(macs, elementwise, ops, invocations=1)


def contender(key: str, label: str, build: Callable[[int], object], fold: Fold, settings: Settings,
              conversion: str) -> Contender:
    """Build (seeded), train and convert a Keras peer; it runs on LiteRT, its TFLM arena is measured with the real
    TFLM kernels (which fails if TFLM lacks one of its operators) and the .tflite is kept in the fold's folder."""
    from bench.device import WINDOWS, emulated_decision
    from deploy.tflm_arena_probe import measure_arena
    from training.atomic import write_bytes

    import_tensorflow().keras.utils.set_random_seed(SEED)
    model = build(len(fold.classes))
    epochs = fit(model, fold, settings)
    int8 = to_int8(model, calibration_windows(fold, settings.calibration_windows))
    write_bytes(fold.workdir / f"{key}_int8.tflite", int8)
    ops = graph_operators(int8)
    runner = LiteRTWindow(int8)
    work = keras_workload(model, len(ops))
    arena = measure_arena(int8).min_arena_bytes
    q = np.array([runner.io.quantize(z)[0] for z in fold.test.x[:WINDOWS]])
    emulated = emulated_decision(int8, ops, q.reshape(len(q), 1, -1), arena)  # one invoke per decision
    return Contender(key, label, ours=False, runtime="LiteRT", format="int8 .tflite", decide=runner.decide,
                     predict=runner.predict, params=int(model.count_params()), model_bytes=len(int8),
                     arena_bytes=arena, macs=work.macs, acs=None, dense_macs=work.macs, workload=work,
                     epochs=epochs, emulated=emulated,
                     notes=[f"{conversion}; {len(ops)} operators per invoke "
                            f"({', '.join(sorted(set(ops)))})"])
