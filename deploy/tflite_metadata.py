"""TFLite model metadata (the `TFLITE_METADATA` flatbuffer, file identifier "M001") and packed associated files,
written with the `flatbuffers` runtime because tflite-support cannot be installed beside TensorFlow 2.21 (it pins
protobuf < 4).

Layout, as the TFLite metadata schema (metadata_schema.fbs, v1.5) defines it and the LiteRT Support library
(MetadataExtractor) reads it:
- the model's `buffers` gain one buffer holding a ModelMetadata table, and `metadata` an entry
  {name: "TFLITE_METADATA", buffer: index};
- associated files (labels.txt) are appended to the .tflite as a zip archive whose offsets count from the start of
  the file, so the file is both a valid flatbuffer and a valid zip.

Only the fields used here are written; their slot numbers are their declaration order in the schema.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import flatbuffers

from deploy.tflite_model import read_model

METADATA_NAME = b"TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # no field newer than schema 1.0 is written
TENSOR_AXIS_LABELS = 2  # AssociatedFileType

# slot numbers (field declaration order in metadata_schema.fbs)
ASSOCIATED_FILE = {"name": 0, "description": 1, "type": 2}
TENSOR_METADATA = {"name": 0, "description": 1, "associated_files": 6}
SUBGRAPH_METADATA = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3}
MODEL_METADATA = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4, "license": 5,
                  "min_parser_version": 7}


@dataclass(frozen=True)
class TensorDoc:
    name: str
    description: str
    labels_file: str | None = None  # an associated TENSOR_AXIS_LABELS file


@dataclass(frozen=True)
class ModelDoc:
    name: str
    description: str
    version: str
    author: str
    license: str
    inputs: tuple[TensorDoc, ...]
    outputs: tuple[TensorDoc, ...]


def _table(b: flatbuffers.Builder, slots: dict[str, int], strings: dict[str, int], offsets: dict[str, int],
           bytes_: dict[str, int] | None = None) -> int:
    b.StartObject(max(slots.values()) + 1)
    for key, off in {**strings, **offsets}.items():
        b.PrependUOffsetTRelativeSlot(slots[key], off, 0)
    for key, value in (bytes_ or {}).items():
        b.PrependInt8Slot(slots[key], value, 0)
    return b.EndObject()


def _vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _tensor(b: flatbuffers.Builder, doc: TensorDoc) -> int:
    strings = {"name": b.CreateString(doc.name), "description": b.CreateString(doc.description)}
    offsets = {}
    if doc.labels_file:
        file_strings = {"name": b.CreateString(doc.labels_file),
                        "description": b.CreateString("class names, one per line, in output order")}
        labels = _table(b, ASSOCIATED_FILE, file_strings, {}, {"type": TENSOR_AXIS_LABELS})
        offsets["associated_files"] = _vector(b, [labels])
    return _table(b, TENSOR_METADATA, strings, offsets)


def model_metadata(doc: ModelDoc) -> bytes:
    """The ModelMetadata flatbuffer (root table, file identifier M001)."""
    b = flatbuffers.Builder(1024)
    inputs = _vector(b, [_tensor(b, t) for t in doc.inputs])
    outputs = _vector(b, [_tensor(b, t) for t in doc.outputs])
    subgraph = _table(b, SUBGRAPH_METADATA, {"name": b.CreateString("main"),
                                             "description": b.CreateString("one streaming time step")},
                      {"input_tensor_metadata": inputs, "output_tensor_metadata": outputs})
    strings = {key: b.CreateString(getattr(doc, key)) for key in ("name", "description", "version", "author",
                                                                  "license")}
    strings["min_parser_version"] = b.CreateString(MIN_PARSER_VERSION)
    root = _table(b, MODEL_METADATA, strings, {"subgraph_metadata": _vector(b, [subgraph])})
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def with_metadata(model: bytes, doc: ModelDoc, files: dict[str, bytes]) -> bytes:
    """The model with `doc` as its TFLITE_METADATA buffer (replacing any previous one) and `files` zipped on."""
    import ai_edge_litert.schema_py_generated as schema

    tree = read_model(model)
    tree.metadata = [m for m in (tree.metadata or []) if m.name != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = list(model_metadata(doc))
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME.decode(), len(tree.buffers) - 1
    tree.metadata.append(entry)
    b = flatbuffers.Builder(len(model) + 4096)
    b.Finish(tree.Pack(b), file_identifier=b"TFL3")
    packed = io.BytesIO(bytes(b.Output()))
    with zipfile.ZipFile(packed, "a", zipfile.ZIP_STORED) as z:  # appends; offsets count from the file start
        for name, data in files.items():
            z.writestr(name, data)
    return packed.getvalue()
