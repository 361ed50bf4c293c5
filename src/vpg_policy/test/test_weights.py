"""Weights files: round trip, metadata, sha256, atomic writes, and every way to reject them."""

import hashlib
import json
import os
import struct

import numpy as np
import pytest
from safetensors.torch import save as safetensors_save
import torch
from vpg_common.files import file_sha256
from vpg_policy.q_network import build_q_network
from vpg_policy.q_network_base import QNetworkConfig
from vpg_policy.weights import (build_from_weights, check_compatible, ChecksumMismatchError,
                                CorruptWeightsError, IncompatibleWeightsError, load_into,
                                load_model, read_weights, save_weights, serialize_weights,
                                write_atomically)

TINY = QNetworkConfig(num_rotations=4, stem_channels=4, trunk_channels=4, trunk_dilations=(1,),
                      feature_channels=4, head_channels=4, head_dilations=(1,))


@pytest.fixture
def model():
    return build_q_network('vpg', TINY, seed=0).eval()


def q(model):
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    height = (rng.random((32, 32)) * 0.05).astype(np.float32)
    return model.q_maps(color, height)


def test_round_trip_gives_the_same_network(tmp_path, model):
    path = tmp_path / 'w.safetensors'
    digest = save_weights(path, model, version=12, extra={'step': 340})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)

    loaded, meta = load_model(path, expected_sha256=digest)
    assert meta.version == 12 and meta.variant == 'vpg' and meta.config == TINY
    assert meta.architecture_hash == model.architecture_hash()
    assert meta.extra == {'step': '340'}
    for a, b in zip(q(model), q(loaded)):
        np.testing.assert_array_equal(a, b)


def test_load_into_an_existing_network(tmp_path, model):
    other = build_q_network('vpg', TINY, seed=1).eval()
    assert not np.array_equal(q(model)[0], q(other)[0])
    load_into(other, read_weights(serialize_weights(model, 3)))
    np.testing.assert_array_equal(q(model)[0], q(other)[0])


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, model):
    path = tmp_path / 'sub' / 'w.safetensors'
    save_weights(path, model, 1)
    first = path.read_bytes()
    save_weights(path, build_q_network('vpg', TINY, seed=9), 2)
    assert path.read_bytes() != first
    assert os.listdir(path.parent) == ['w.safetensors']
    with pytest.raises(TypeError):
        write_atomically(path, 'not bytes')  # a failed write keeps the old file
    assert read_weights(path).metadata.version == 2
    assert os.listdir(path.parent) == ['w.safetensors']


def test_wrong_sha256_is_rejected(model):
    data = serialize_weights(model, 1)
    with pytest.raises(ChecksumMismatchError, match='sha256'):
        read_weights(data, expected_sha256='0' * 64)


@pytest.mark.parametrize('cut', [0, 5, 100, -1, -200])
def test_truncated_weights_are_rejected(model, cut):
    data = serialize_weights(model, 1)
    with pytest.raises(CorruptWeightsError):
        read_weights(data[:cut])


def test_garbage_and_flipped_bytes_are_rejected(model):
    with pytest.raises(CorruptWeightsError):
        read_weights(b'\x00' * 64)
    with pytest.raises(CorruptWeightsError):
        read_weights(os.urandom(4096))
    data = bytearray(serialize_weights(model, 1))
    data[10] ^= 0xFF  # inside the JSON header
    with pytest.raises(CorruptWeightsError):
        read_weights(bytes(data))


def test_pickles_are_rejected(tmp_path, model):
    path = tmp_path / 'w.pt'
    torch.save(model.state_dict(), path)
    with pytest.raises(CorruptWeightsError):
        read_weights(path)


def test_plain_safetensors_without_our_metadata_are_rejected(model):
    data = safetensors_save({k: v.contiguous() for k, v in model.state_dict().items()})
    with pytest.raises(CorruptWeightsError, match='metadata'):
        read_weights(data)


def test_non_finite_weights_are_rejected(model):
    with torch.no_grad():
        next(iter(model.parameters()))[0] = float('nan')
    with pytest.raises(CorruptWeightsError, match='NaN'):
        read_weights(serialize_weights(model, 1))


def test_other_architecture_is_incompatible(model):
    bigger = build_q_network('vpg', QNetworkConfig(**{**TINY.to_dict(), 'head_channels': 8}))
    loaded = read_weights(serialize_weights(bigger, 1))
    with pytest.raises(IncompatibleWeightsError, match='head_channels'):
        check_compatible(loaded, model)
    # Built from its own metadata, the same file is fine.
    assert build_from_weights(loaded).config.head_channels == 8


def test_wrong_tensor_shape_is_incompatible(model):
    # A file whose metadata claims this architecture but whose tensors do not fit it.
    data = serialize_weights(model, 1)
    header_len = struct.unpack('<Q', data[:8])[0]
    metadata = json.loads(data[8:8 + header_len])['__metadata__']
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    name = 'push_head.q.weight'
    tensors[name] = torch.zeros(2, *tensors[name].shape[1:])
    with pytest.raises(IncompatibleWeightsError, match=name):
        check_compatible(read_weights(safetensors_save(tensors, metadata)), model)
    del tensors[name]
    with pytest.raises(IncompatibleWeightsError, match='missing'):
        check_compatible(read_weights(safetensors_save(tensors, metadata)), model)


def test_edited_metadata_is_rejected(model):
    data = serialize_weights(model, 1)
    header_len = struct.unpack('<Q', data[:8])[0]
    metadata = json.loads(data[8:8 + header_len])['__metadata__']
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = json.loads(metadata['config'])
    config['num_rotations'] = 8  # hash no longer matches
    with pytest.raises(CorruptWeightsError, match='architecture hash'):
        read_weights(safetensors_save(tensors, {**metadata, 'config': json.dumps(config)}))
    with pytest.raises(CorruptWeightsError, match='malformed'):
        read_weights(safetensors_save(tensors, {**metadata, 'version': 'seven'}))
    with pytest.raises(IncompatibleWeightsError, match='format version'):
        read_weights(safetensors_save(tensors, {**metadata, 'format_version': '99'}))
