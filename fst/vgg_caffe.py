"""`fst convert-vgg`: the original Oxford VGG16 Caffe release -> the loss network's state_dict.

The Visual Geometry Group's VGG_ILSVRC_16_layers.caffemodel (528 MB, CC BY 4.0) is what Johnson
et al. used. A .caffemodel is a protobuf `NetParameter`; only a few of its fields matter here, so
they are read straight from the protobuf wire format (no Caffe, no compiled caffe.proto):

    NetParameter      layer  = 100 (LayerParameter, current)   layers = 2 (V1LayerParameter, 2014)
    LayerParameter    name   = 1   blobs = 7
    V1LayerParameter  name   = 4   blobs = 6
    BlobProto         num, channels, height, width = 1..4 (legacy 4-D shape)   shape = 7 (BlobShape:
                      dim = 1, int64)   data = 5 (float32, packed or not)

The 13 convolutions conv1_1 ... conv5_3 are written in torchvision's `vgg16().features` keys
(0.weight, 0.bias, 2.weight, ...) and left as Caffe trained them: the first layer takes BGR,
0..255, mean-subtracted (fst.vgg's "caffe" convention). Fully connected layers are skipped.
"""

from __future__ import annotations

import os

import numpy as np

from fst import FstError

WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_FIXED32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(buf: memoryview):
    """Yield (field number, wire type, value) of one protobuf message: value is an int for varints
    and fixed-width fields, a memoryview for length-delimited ones."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == WIRE_VARINT:
            value, pos = _varint(buf, pos)
        elif wire == WIRE_FIXED64:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == WIRE_FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4  # a float: kept as its 4 bytes
        elif wire == WIRE_BYTES:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated message")
        yield number, wire, value


def read_blob(buf: memoryview) -> np.ndarray:
    """A BlobProto -> a float32 array of its shape."""
    legacy, dims, chunks = {}, [], []
    for number, wire, value in fields(buf):
        if number in (1, 2, 3, 4) and wire == WIRE_VARINT:
            legacy[number] = value
        elif number == 7 and wire == WIRE_BYTES:
            for n, w, v in fields(value):
                if n == 1 and w == WIRE_BYTES:  # packed int64 dims
                    p = 0
                    while p < len(v):
                        d, p = _varint(v, p)
                        dims.append(d)
                elif n == 1:
                    dims.append(v)
        elif number == 5:
            chunks.append(bytes(value))  # packed floats, or one unpacked float
    data = np.frombuffer(b"".join(chunks), dtype="<f4")
    shape = dims or [legacy.get(i, 1) for i in (1, 2, 3, 4)]
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"a blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def read_layers(buf: memoryview) -> dict[str, list[np.ndarray]]:
    """NetParameter -> {layer name: [blobs]} for the layers that have blobs."""
    layers = {}
    for number, wire, value in fields(buf):
        if wire != WIRE_BYTES or number not in (2, 100):
            continue
        name_field, blobs_field = (4, 6) if number == 2 else (1, 7)
        name, blobs = "", []
        for n, w, v in fields(value):
            if n == name_field and w == WIRE_BYTES:
                name = bytes(v).decode("utf-8", "replace")
            elif n == blobs_field and w == WIRE_BYTES:
                blobs.append(read_blob(v))
        if blobs:
            layers[name] = blobs
    return layers


def convert(caffemodel: str) -> dict:
    """The 13 conv layers of a VGG16 .caffemodel as a state_dict keyed like vgg16().features."""
    import torch

    from fst.vgg import LAYER_NAMES, _make_features

    if not os.path.isfile(caffemodel):
        raise FstError(f"{caffemodel}: no such file")
    with open(caffemodel, "rb") as f:
        raw = memoryview(f.read())
    try:
        layers = read_layers(raw)
    except ValueError as e:
        raise FstError(f"{caffemodel}: not a Caffe model ({e})") from None
    expected = _make_features().state_dict()
    state = {}
    for index, layer in enumerate(LAYER_NAMES):
        if not layer.startswith("conv"):
            continue
        if layer not in layers or len(layers[layer]) != 2:
            raise FstError(f"{caffemodel}: no layer {layer} with weights and bias (layers: {', '.join(layers) or 'none'}); "
                           "is it VGG16?")
        weight, bias = layers[layer]
        state[f"{index}.weight"] = torch.from_numpy(weight.copy())
        state[f"{index}.bias"] = torch.from_numpy(bias.reshape(-1).copy())
        for key in (f"{index}.weight", f"{index}.bias"):
            if state[key].shape != expected[key].shape:
                raise FstError(f"{caffemodel}: {layer} is {tuple(state[key].shape)}, VGG16's is {tuple(expected[key].shape)}")
    return state


def run(args) -> int:
    import torch

    from fst.images import atomic_write_bytes
    from fst.vgg import file_sha256

    if os.path.exists(args.output) and not args.overwrite:
        raise FstError(f"{args.output}: already exists (pass --overwrite to replace it)")
    state = convert(args.caffemodel)
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"wrote {args.output}: {len(state) // 2} conv layers, Caffe convention (BGR, 0..255, mean-subtracted); "
          f"sha256 {file_sha256(args.output)}; use it with --vgg-weights {args.output} or FST_VGG_WEIGHTS")
    return 0
