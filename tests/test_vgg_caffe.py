"""fst convert-vgg: a VGG16 .caffemodel (the Oxford release's format) -> the loss network's file.

No .caffemodel can be downloaded here, so the test writes one: the real Caffe-convention weights
encoded in the protobuf wire format of both Caffe layer formats (V1 `layers`, as the 2014 Oxford
release has, and the current `layer`), plus a fully connected layer to be skipped; the converted
file must hold exactly the original tensors and load as the loss network.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from fst.vgg import LAYER_NAMES, load_loss_network


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(array: np.ndarray, legacy_shape: bool) -> bytes:
    data = _field(5, array.astype("<f4").tobytes())
    if legacy_shape:  # num, channels, height, width (4-D, padded with 1s in front)
        dims = [1] * (4 - array.ndim) + list(array.shape)
        return b"".join(_varint(i << 3) + _varint(d) for i, d in enumerate(dims, start=1)) + data
    return _field(7, _field(1, b"".join(_varint(d) for d in array.shape))) + data


def caffemodel(state: dict, v1: bool) -> bytes:
    """A NetParameter with the 13 conv layers of `state` (vgg16().features keys) and an fc6."""
    layers = []
    for index, name in enumerate(LAYER_NAMES):
        if name.startswith("conv"):
            weight, bias = state[f"{index}.weight"].numpy(), state[f"{index}.bias"].numpy()
            layers.append((name, [weight, bias]))
    layers.insert(3, ("relu_no_blobs", []))
    layers.append(("fc6", [np.ones((4, 8), np.float32), np.zeros(4, np.float32)]))
    out = _field(1, b"VGG_ILSVRC_16_layers")
    for name, blobs in layers:
        if v1:  # V1LayerParameter: name 4, type 5 (CONVOLUTION = 4), blobs 6
            body = _field(4, name.encode()) + _varint(5 << 3) + _varint(4) + b"".join(_field(6, _blob(b, True)) for b in blobs)
            out += _field(2, body)
        else:  # LayerParameter: name 1, type 2, blobs 7
            body = _field(1, name.encode()) + _field(2, b"Convolution") + b"".join(_field(7, _blob(b, False)) for b in blobs)
            out += _field(100, body)
    return out


@pytest.fixture(scope="module")
def caffe_state(loss_network) -> dict:
    return {k: v.clone() for k, v in loss_network.features.state_dict().items()}


@pytest.mark.parametrize("v1", [True, False], ids=["V1 layers (Oxford 2014)", "current layer"])
def test_convert_vgg_reproduces_the_weights(fst_cli, tmp_path, caffe_state, v1):
    source = tmp_path / "VGG_ILSVRC_16_layers.caffemodel"
    source.write_bytes(caffemodel(caffe_state, v1))
    out = tmp_path / "vgg16.pth"
    code, stdout, stderr = fst_cli("convert-vgg", source, "-o", out)
    assert code == 0, stderr
    assert "13 conv layers" in stdout
    converted = torch.load(out, weights_only=True)
    assert converted.keys() == caffe_state.keys()
    assert all(torch.equal(converted[k], caffe_state[k]) for k in caffe_state)
    net = load_loss_network(str(out))
    assert net.convention == "caffe"
    # refuses to replace it, and names a file that is no VGG16
    code, _, stderr = fst_cli("convert-vgg", source, "-o", out)
    assert code == 2 and "already exists" in stderr


def test_convert_vgg_refuses_other_files(fst_cli, tmp_path, caffe_state):
    partial = {k: v for k, v in caffe_state.items() if not k.startswith("28.")}  # no conv5_3
    source = tmp_path / "partial.caffemodel"
    body = caffemodel({**partial, "28.weight": torch.zeros(1, 1, 1, 1), "28.bias": torch.zeros(1)}, v1=True)
    source.write_bytes(body)
    code, _, stderr = fst_cli("convert-vgg", source, "-o", tmp_path / "x.pth")
    assert code == 2 and "conv5_3 is (1, 1, 1, 1)" in stderr and "Traceback" not in stderr
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(struct.pack("<I", 0xFFFFFFFF) * 3)
    code, _, stderr = fst_cli("convert-vgg", junk, "-o", tmp_path / "y.pth")
    assert code == 2 and "fst: error:" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "x.pth").exists() and not (tmp_path / "y.pth").exists()
