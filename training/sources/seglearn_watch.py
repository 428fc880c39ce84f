"""The bundled default: real smartwatch recordings from the seglearn wheel, loaded without arbitrary unpickling."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np

from training.errors import HarError
from training.recordings import STANDARD_GRAVITY, Dataset, Recording

WATCH_SHA256 = "eb122f23cdf06ef6bd6c6c5312958ec5cf9d038e2e6d457b8081662c75a42537"  # seglearn 1.2.5
WATCH_FS_HZ = 50.0
# Only numpy's own reconstruction machinery may be resolved while unpickling.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy types are allowed")
        return super().find_class(module, name)


def read_numpy_object_file(raw: bytes) -> object:
    """Read a `.npy` holding a pickled object array, resolving numpy types only."""
    f = io.BytesIO(raw)
    try:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        read_header(f)
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise HarError(f"unsafe or corrupt .npy file: {exc}") from None


def seglearn_watch_path() -> Path:
    spec = importlib.util.find_spec("seglearn")  # locates the wheel; nothing from it is imported
    if spec is None or not spec.submodule_search_locations:
        raise HarError("bundled data needs the seglearn wheel: pip install seglearn==1.2.5")
    return Path(spec.submodule_search_locations[0]) / "data" / "watch_dataset.npy"


def load_seglearn_watch(path: Path | None = None) -> Dataset:
    """10 subjects x 7 shoulder exercises at 50 Hz; accel g -> m/s^2, gyro already rad/s."""
    path = path or seglearn_watch_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarError(f"cannot read {path}: {exc.strerror}") from None
    if hashlib.sha256(raw).hexdigest() != WATCH_SHA256:
        raise HarError(f"{path} is not the expected seglearn 1.2.5 watch_dataset.npy (hash mismatch)")
    data = read_numpy_object_file(raw)
    data = data.item() if isinstance(data, np.ndarray) else data
    classes = [str(c) for c in data["y_labels"]]
    recordings = []
    for x, y, subject in zip(data["X"], data["y"], data["subject"]):
        samples = np.asarray(x, dtype=np.float64).copy()
        samples[:, :3] *= STANDARD_GRAVITY
        recordings.append(Recording(samples, WATCH_FS_HZ, classes[int(y)], str(int(subject))))
    return Dataset("seglearn-watch", recordings, classes)
