"""Read TensorFlow checkpoints without TensorFlow: the tensors of a ``tf.train.Saver`` file as numpy arrays.

Two on-disk formats, both built on TensorFlow's sorted string table (``tensorflow/core/lib/io/table*``,
LevelDB's SSTable: prefix-compressed key/value blocks, a block index and a 48-byte footer ending in the
magic number ``0xdb4775248b80fb57``):

* **V1** (``tf.train.Saver`` before TensorFlow 0.12; ``write_version=V1`` since): one file, e.g.
  ``model.ckpt``. The table's empty key holds a ``SavedTensorSlices`` message whose ``meta`` lists every
  tensor (name, shape, dtype); every other entry holds a ``SavedTensorSlices`` whose ``data`` is one
  ``SavedSlice`` (name, slice, a ``TensorProto`` with the values in its typed repeated field, e.g.
  ``float_val``). Messages: ``tensorflow/core/protobuf/saved_tensor_slice.proto``, ``tensor.proto``.
* **V2** (the default since TensorFlow 0.12): ``PREFIX.index`` (a table: the empty key holds a
  ``BundleHeaderProto``, each tensor name a ``BundleEntryProto`` with dtype, shape, shard, offset and
  size) and ``PREFIX.data-0000K-of-0000N`` (the raw little-endian bytes). Messages:
  ``tensorflow/core/protobuf/tensor_bundle.proto``.

``TFCheckpoint(path)`` takes the V1 file or the V2 prefix (or its ``.index``). Blocks are read without
their CRC check (a pure-Python CRC32C of a large file would take minutes); a damaged file shows as a
parse error or a tensor of the wrong size. Snappy-compressed tables (never written by ``tf.train.Saver``)
and partitioned variables are refused with a clear error.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import T2IError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked CRC32C (4 bytes)

# tensorflow/core/framework/types.proto DataType -> numpy dtype
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}

# TensorProto: typed value fields -> (field number, how its elements are encoded)
_TYPED_FIELDS = {np.float32: (5, "<f4"), np.float64: (6, "<f8"), np.int32: (7, "varint"), np.uint8: (7, "varint"),
                 np.int16: (7, "varint"), np.int8: (7, "varint"), np.int64: (10, "varint"), np.bool_: (11, "varint"),
                 np.float16: (13, "varint"), np.uint16: (7, "varint"), np.uint32: (16, "varint"),
                 np.uint64: (17, "varint")}


# ---------------------------------------------------------------------------------------------------
# protobuf wire format (only what the checkpoint messages use)
# ---------------------------------------------------------------------------------------------------


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise T2IError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise T2IError("varint longer than 10 bytes")


def _signed(value: int) -> int:
    """A varint-encoded int64 (two's complement in 64 bits) as a Python int."""
    return value - (1 << 64) if value >= 1 << 63 else value


def proto_fields(buf) -> list[tuple[int, int, object]]:
    """``[(field number, wire type, value)]`` of a serialised message: varints and fixed-width values
    as ints, length-delimited ones as memoryviews (nested messages, bytes, packed arrays)."""
    buf = memoryview(buf)
    out, pos, end = [], 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise T2IError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise T2IError("truncated protobuf message")
        out.append((number, wire, value))
    return out


def _first(fields, number: int, default=None):
    return next((v for n, _, v in fields if n == number), default)


def _all(fields, number: int) -> list:
    return [v for n, _, v in fields if n == number]


def _shape(buf) -> tuple[int, ...]:
    """TensorShapeProto: ``dim`` (2) messages with ``size`` (1)."""
    return tuple(_signed(_first(proto_fields(d), 1, 0)) for d in _all(proto_fields(buf), 2))


def _slice(buf, rank: int) -> tuple[slice, ...]:
    """TensorSliceProto: one ``extent`` (1) per dimension with ``start`` (1) and, unless the extent is
    the whole dimension, ``length`` (2); no extents at all means the whole tensor."""
    extents = _all(proto_fields(buf), 1)
    if not extents:
        return (slice(None),) * rank
    out = []
    for e in extents:
        f = proto_fields(e)
        start, length = _signed(_first(f, 1, 0)), _first(f, 2)
        out.append(slice(None) if length is None else slice(start, start + _signed(length)))
    return tuple(out)


def _varints(buf) -> list[int]:
    values, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        values.append(v)
    return values


def tensor_proto_values(buf, dtype, count: int) -> np.ndarray:
    """The ``count`` values of a TensorProto as a flat array of ``dtype``: from ``tensor_content`` (4)
    when present, else from the dtype's repeated field (packed or not); a single value stands for all
    ``count`` (TensorFlow's fill convention)."""
    fields = proto_fields(buf)
    content = _first(fields, 4)
    if content is not None and len(content):
        values = np.frombuffer(bytes(content), dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        number, encoding = _TYPED_FIELDS[dtype]
        chunks = [(wire, v) for n, wire, v in fields if n == number]
        if encoding == "varint":
            raw = []
            for wire, v in chunks:
                raw += _varints(v) if wire == 2 else [v]
            if dtype == np.float16:  # half_val holds the 16-bit patterns
                values = np.array(raw, dtype=np.uint16).view(np.float16)
            else:
                values = np.array([_signed(v) for v in raw], dtype=np.int64).astype(dtype)
        else:
            width = np.dtype(encoding).itemsize
            data = b"".join(bytes(v) if wire == 2 else int(v).to_bytes(width, "little") for wire, v in chunks)
            values = np.frombuffer(data, dtype=encoding)
    if values.size == 1 and count != 1:
        values = np.full(count, values[0])
    if values.size != count:
        raise T2IError(f"a tensor holds {values.size} values where its shape needs {count}")
    return values.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------------
# sorted string table
# ---------------------------------------------------------------------------------------------------


class Table:
    """A TensorFlow/LevelDB sorted string table in ``data`` (bytes): ``entries()`` yields
    ``(key, value)`` in key order."""

    def __init__(self, data, source: str):
        self.data, self.source = data, source
        if len(data) < FOOTER_SIZE:
            raise T2IError(f"{source} is not a TensorFlow checkpoint table: {len(data)} bytes is too short")
        footer = data[len(data) - FOOTER_SIZE:]
        if int.from_bytes(footer[-8:], "little") != TABLE_MAGIC:
            raise T2IError(f"{source} is not a TensorFlow checkpoint table (bad magic number)")
        _, pos = _varint(footer, 0)  # metaindex handle (unused)
        _, pos = _varint(footer, pos)
        self.index_offset, pos = _varint(footer, pos)
        self.index_size, pos = _varint(footer, pos)

    def block(self, offset: int, size: int) -> memoryview:
        end = offset + size
        if end + BLOCK_TRAILER_SIZE > len(self.data):
            raise T2IError(f"{self.source}: a block runs past the end of the file (truncated?)")
        kind = self.data[end]
        if kind != 0:
            raise T2IError(f"{self.source}: block compressed with type {kind} (snappy); only uncompressed "
                           "tables are supported: re-save the checkpoint with TensorFlow")
        return memoryview(self.data)[offset:end]

    def block_entries(self, block: memoryview):
        if len(block) < 4:
            raise T2IError(f"{self.source}: corrupt block")
        restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
        limit = len(block) - 4 - 4 * restarts
        if limit < 0:
            raise T2IError(f"{self.source}: corrupt block")
        pos, key = 0, b""
        while pos < limit:
            shared, pos = _varint(block, pos)
            unshared, pos = _varint(block, pos)
            length, pos = _varint(block, pos)
            if shared > len(key) or pos + unshared + length > limit:
                raise T2IError(f"{self.source}: corrupt block entry")
            key = key[:shared] + bytes(block[pos:pos + unshared])
            pos += unshared
            yield key, block[pos:pos + length]
            pos += length

    def entries(self):
        for _, handle in self.block_entries(self.block(self.index_offset, self.index_size)):
            offset, p = _varint(handle, 0)
            size, _ = _varint(handle, p)
            yield from self.block_entries(self.block(offset, size))


# ---------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------


class TFCheckpoint:
    """The tensors of a TensorFlow checkpoint (V1 file or V2 prefix) by name.

    ``variables()``: ``{name: (dtype, shape)}``; ``read(name)``: the tensor as a numpy array.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix == ".index" or path.name.rsplit(".", 1)[-1].startswith("data-"):
            path = path.with_name(path.name.rsplit(".", 1)[0])
        self.path = path
        self._vars: dict[str, tuple[type, tuple[int, ...]]] = {}
        index = path.with_name(path.name + ".index")
        if index.is_file():
            self.format = "V2"
            self._open_v2(index)
        elif path.is_file():
            self.format = "V1"
            self._open_v1(path)
        else:
            raise T2IError(f"TensorFlow checkpoint not found: {path} (neither a V1 file nor {index.name} of a V2 one)")

    @staticmethod
    def _read_bytes(file: Path) -> bytes:
        try:
            return file.read_bytes()
        except OSError as e:
            raise T2IError(f"cannot read {file}: {e.strerror or e}") from None

    def close(self) -> None:
        """Nothing stays open between reads; kept so the checkpoint can be used in a ``with`` block."""

    def __enter__(self) -> TFCheckpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- V2 --------------------------------------------------------------------------------------
    def _open_v2(self, index: Path) -> None:
        table = Table(self._read_bytes(index), str(index))
        self._entries = {}
        num_shards = 1
        try:
            for key, value in table.entries():
                fields = proto_fields(value)
                if key == b"":  # BundleHeaderProto: num_shards (1), endianness (2: 0 little, 1 big)
                    num_shards = _first(fields, 1, 1)
                    if _first(fields, 2, 0) != 0:
                        raise T2IError(f"{index}: big-endian checkpoints are not supported")
                    continue
                name = key.decode("utf-8")
                if _all(fields, 7):
                    raise T2IError(f"{index}: {name} is a partitioned variable, which is not supported")
                dtype_id = _first(fields, 1, 0)
                shape_buf = _first(fields, 2)
                shape = _shape(shape_buf) if shape_buf is not None else ()
                self._entries[name] = (dtype_id, shape, _first(fields, 3, 0), _first(fields, 4, 0), _first(fields, 5, 0))
                self._vars[name] = (DTYPES.get(dtype_id), shape)
        except (UnicodeDecodeError, IndexError, struct.error) as e:
            raise T2IError(f"{index}: corrupt checkpoint index ({type(e).__name__})") from None
        self._shards = [self.path.with_name(f"{self.path.name}.data-{k:05d}-of-{num_shards:05d}")
                        for k in range(num_shards)]

    def _read_v2(self, name: str) -> np.ndarray:
        dtype_id, shape, shard, offset, size = self._entries[name]
        dtype = self._dtype(name, dtype_id)
        file = self._shards[shard] if shard < len(self._shards) else None
        if file is None or not file.is_file():
            raise T2IError(f"checkpoint data file missing: {file or f'shard {shard}'}")
        count = int(np.prod(shape, dtype=np.int64))
        with open(file, "rb") as f:
            f.seek(offset)
            raw = f.read(size)
        if size != count * np.dtype(dtype).itemsize or len(raw) != size:
            raise T2IError(f"{file}: {name} should be {count * np.dtype(dtype).itemsize} bytes at offset {offset}, "
                           f"found {len(raw)} (truncated or corrupt)")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)

    # -- V1 --------------------------------------------------------------------------------------
    def _open_v1(self, file: Path) -> None:
        table = Table(self._read_bytes(file), str(file))
        self._slices: dict[str, list[tuple[tuple[slice, ...], memoryview]]] = {}
        self._meta: dict[str, tuple[int, tuple[int, ...]]] = {}
        try:
            for key, value in table.entries():
                for number, _, message in proto_fields(value):
                    if number == 1:  # SavedTensorSliceMeta: tensor (1) = SavedSliceMeta{name, shape, type}
                        for tensor in _all(proto_fields(message), 1):
                            f = proto_fields(tensor)
                            name = bytes(_first(f, 1, b"")).decode("utf-8")
                            shape_buf = _first(f, 2)
                            self._meta[name] = (_first(f, 3, 0), _shape(shape_buf) if shape_buf is not None else ())
                    elif number == 2:  # SavedSlice: name (1), slice (2), data (3: TensorProto)
                        f = proto_fields(message)
                        name = bytes(_first(f, 1, b"")).decode("utf-8")
                        self._slices.setdefault(name, []).append((_first(f, 2, b""), _first(f, 3, b"")))
        except (UnicodeDecodeError, IndexError, struct.error) as e:
            raise T2IError(f"{file}: corrupt V1 checkpoint ({type(e).__name__})") from None
        if not self._meta:
            raise T2IError(f"{file}: a TensorFlow table without checkpoint metadata (not a V1 checkpoint)")
        self._vars = {name: (DTYPES.get(t), shape) for name, (t, shape) in self._meta.items()}

    def _read_v1(self, name: str) -> np.ndarray:
        dtype_id, shape = self._meta[name]
        dtype = self._dtype(name, dtype_id)
        out = np.zeros(shape, dtype=dtype)
        filled = 0
        for slice_buf, data in self._slices.get(name, []):
            region = _slice(slice_buf, len(shape))
            target = out[region] if shape else out
            values = tensor_proto_values(data, dtype, int(target.size))
            if shape:
                out[region] = values.reshape(target.shape)
            else:
                out = values.reshape(())
            filled += int(target.size)
        if filled != out.size:
            raise T2IError(f"{self.path}: the slices of {name} cover {filled} of its {out.size} values")
        return out

    # -- public ----------------------------------------------------------------------------------
    def _dtype(self, name: str, dtype_id: int):
        if dtype_id not in DTYPES:
            raise T2IError(f"{self.path}: {name} has dtype {DTYPE_NAMES.get(dtype_id, dtype_id)}, which t2igan "
                           "cannot read")
        return DTYPES[dtype_id]

    def files(self) -> list[Path]:
        """The files the checkpoint consists of (V1: one; V2: the index and its data shards)."""
        if self.format == "V1":
            return [self.path]
        return [self.path.with_name(self.path.name + ".index"), *self._shards]

    def variables(self) -> dict[str, tuple[type | None, tuple[int, ...]]]:
        """``{name: (numpy dtype or None if unreadable, shape)}`` of every tensor in the checkpoint."""
        return dict(self._vars)

    def read(self, name: str) -> np.ndarray:
        if name not in self._vars:
            raise T2IError(f"{self.path} has no tensor {name!r}")
        try:
            return self._read_v2(name) if self.format == "V2" else self._read_v1(name)
        except (IndexError, ValueError, struct.error) as e:
            if isinstance(e, T2IError):
                raise
            raise T2IError(f"{self.path}: cannot read {name} ({type(e).__name__}: {str(e)[:120]})") from None
