"""
Q-network weights on disk and on the wire: safetensors with version, architecture and sha256.

A weights file is a plain safetensors file (never a pickle: torch.load is not used) whose
header metadata records:

* ``format`` / ``format_version``: this layout (``vpg_policy.weights`` / ``1``);
* ``version``: the weights version, a non-negative integer that grows during training;
* ``variant`` and ``config``: the Q-network variant and its QNetworkConfig as JSON, enough to
  rebuild the network (q_network.build_q_network);
* ``architecture``: sha256 of the canonical variant + config JSON (QNetwork.architecture_hash);
* optional extra string entries (who wrote it, training step, ...).

The file's own sha256 (of all its bytes) travels beside it, in vpg_interfaces/ModelUpdate.
Readers check, in order: the sha256 when one is expected, the safetensors structure (header
length, offsets, size: a truncated file is caught here), the metadata, finite tensor values,
and, against a live network, variant, architecture and every tensor's name, shape and dtype.
Each failure raises a WeightsError subclass whose message names the problem.
Writes are atomic: a temporary file in the target directory, fsync, then os.replace.
"""

from dataclasses import dataclass, field
import hashlib
import json
import os
from pathlib import Path
import struct
import tempfile

from safetensors.torch import load as safetensors_load, save as safetensors_save
import torch
from vpg_policy.q_network import build_q_network, variant_class
from vpg_policy.q_network_base import QNetworkConfig

FORMAT = 'vpg_policy.weights'
FORMAT_VERSION = '1'
# Safetensors header bytes accepted at most; ours are a few kB.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_DTYPES = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
    'U8': torch.uint8, 'BOOL': torch.bool,
}


class WeightsError(Exception):
    """Weights that cannot be used; the message says why."""


class CorruptWeightsError(WeightsError):
    """Not a readable weights file: truncated, not safetensors, bad metadata or values."""


class ChecksumMismatchError(WeightsError):
    """The bytes do not have the sha256 they were announced with."""


class IncompatibleWeightsError(WeightsError):
    """Readable weights for another network (variant, architecture, tensor names or shapes)."""


@dataclass(frozen=True)
class WeightsMetadata:
    """What a weights file says about itself."""

    version: int
    variant: str
    config: QNetworkConfig
    """The variant's config_class instance."""
    architecture_hash: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedWeights:
    """Verified weights: tensors (on the CPU), metadata and the sha256 of the bytes read."""

    metadata: WeightsMetadata
    tensors: dict
    sha256: str
    size: int


def sha256_hex(data):
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def serialize_weights(model, version, extra=None):
    """
    Serialise a network's weights at `version` (int >= 0) to the bytes of a weights file.

    extra: optional {str: str} stored in the metadata too (e.g. the training step).
    """
    version = int(version)
    if version < 0:
        raise ValueError(f'weights version must be >= 0, got {version}')
    metadata = {str(k): str(v) for k, v in (extra or {}).items()}
    metadata.update({
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'version': str(version),
        'variant': model.variant,
        'config': json.dumps(model.config.to_dict(), sort_keys=True),
        'architecture': model.architecture_hash(),
    })
    tensors = {name: tensor.detach().to('cpu').contiguous()
               for name, tensor in model.state_dict().items()}
    return safetensors_save(tensors, metadata=metadata)


def write_atomically(path, data):
    """
    Write bytes to `path` so readers see the old file or the whole new one, never a part.

    The temporary file lives in the same directory (os.replace is atomic only within one
    file system) and is removed if anything fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(handle, 'wb') as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def save_weights(path, model, version, extra=None):
    """Atomically write a network's weights to `path`; returns the file's hex sha256."""
    data = serialize_weights(model, version, extra)
    write_atomically(path, data)
    return sha256_hex(data)


def _parse_header(data):
    """Check the safetensors framing and return the header dict."""
    if len(data) < 8:
        raise CorruptWeightsError(f'weights are {len(data)} bytes: too short for a '
                                  'safetensors header (truncated?)')
    (header_len,) = struct.unpack('<Q', data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise CorruptWeightsError(
            f'safetensors header claims {header_len} bytes but the data holds '
            f'{len(data) - 8} after the length field (truncated or not safetensors)')
    try:
        header = json.loads(data[8:8 + header_len].decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptWeightsError(f'safetensors header is not valid JSON: {exc}') from None
    if not isinstance(header, dict):
        raise CorruptWeightsError('safetensors header is not a JSON object')
    body = len(data) - 8 - header_len
    end = 0
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        try:
            begin, stop = entry['data_offsets']
            [int(d) for d in entry['shape']]
            dtype = entry['dtype']
        except (KeyError, TypeError, ValueError):
            raise CorruptWeightsError(f'tensor {name!r} has a malformed header entry') from None
        if dtype not in _DTYPES or not 0 <= begin <= stop:
            raise CorruptWeightsError(f'tensor {name!r} has a malformed header entry')
        end = max(end, stop)
    if end != body:
        raise CorruptWeightsError(
            f'tensor data should be {end} bytes but {body} follow the header '
            f'({"truncated" if body < end else "trailing bytes"})')
    return header


def _parse_metadata(raw):
    if not isinstance(raw, dict):
        raise CorruptWeightsError('weights carry no metadata (not written by vpg_policy?)')
    if raw.get('format') != FORMAT:
        raise CorruptWeightsError(f'metadata format is {raw.get("format")!r}, expected {FORMAT!r}')
    if raw.get('format_version') != FORMAT_VERSION:
        raise IncompatibleWeightsError(
            f'weights format version {raw.get("format_version")!r} is not supported '
            f'(this reader knows {FORMAT_VERSION!r})')
    try:
        version = int(raw['version'])
        variant = raw['variant']
        config_dict = json.loads(raw['config'])
        architecture = raw['architecture']
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptWeightsError(f'weights metadata is incomplete or malformed: {exc!r}') \
            from None
    if version < 0:
        raise CorruptWeightsError(f'weights version {version} is negative')
    try:
        config = variant_class(variant).config_class.from_dict(config_dict)
    except (TypeError, ValueError) as exc:
        raise IncompatibleWeightsError(f'weights were made for another architecture: {exc}') \
            from None
    text = json.dumps({'variant': variant, 'config': config.to_dict()}, sort_keys=True,
                      separators=(',', ':'))
    if hashlib.sha256(text.encode()).hexdigest() != architecture:
        raise CorruptWeightsError('architecture hash in the metadata does not match its '
                                  'variant and config')
    known = {'format', 'format_version', 'version', 'variant', 'config', 'architecture'}
    extra = {k: v for k, v in raw.items() if k not in known}
    return WeightsMetadata(version, variant, config, architecture, extra)


def read_weights(source, expected_sha256=None):
    """
    Read and verify weights from a path or from bytes.

    expected_sha256: hex digest the bytes must have (checked first). Returns LoadedWeights;
    raises CorruptWeightsError, ChecksumMismatchError or IncompatibleWeightsError, and
    OSError when a path cannot be read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = Path(source).read_bytes()
    digest = sha256_hex(data)
    if expected_sha256 is not None and digest != expected_sha256.strip().lower():
        raise ChecksumMismatchError(f'sha256 of the weights is {digest}, expected '
                                    f'{expected_sha256} ({len(data)} bytes; corrupt or '
                                    'truncated in transit?)')
    header = _parse_header(data)
    metadata = _parse_metadata(header.get('__metadata__'))
    try:
        tensors = safetensors_load(data)
    except Exception as exc:  # the library's errors are not a stable public type
        raise CorruptWeightsError(f'safetensors could not read the weights: {exc}') from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CorruptWeightsError(f'tensor {name!r} holds NaN or infinite values')
    return LoadedWeights(metadata, tensors, digest, len(data))


def check_compatible(loaded, model):
    """Raise IncompatibleWeightsError unless `loaded` fits `model` exactly."""
    meta = loaded.metadata
    if meta.variant != model.variant:
        raise IncompatibleWeightsError(
            f'weights are for variant {meta.variant!r}, the network is {model.variant!r}')
    if meta.architecture_hash != model.architecture_hash():
        ours, theirs = model.config.to_dict(), meta.config.to_dict()
        differ = sorted(k for k in ours if ours[k] != theirs.get(k))
        raise IncompatibleWeightsError(
            f'weights are for another {meta.variant!r} architecture (differs in: '
            f'{", ".join(differ) or "unknown"})')
    expected = model.state_dict()
    missing = sorted(set(expected) - set(loaded.tensors))
    unexpected = sorted(set(loaded.tensors) - set(expected))
    if missing or unexpected:
        raise IncompatibleWeightsError(
            f'tensor names differ: missing {missing[:5]}, unexpected {unexpected[:5]}')
    for name, tensor in expected.items():
        got = loaded.tensors[name]
        if got.shape != tensor.shape or got.dtype != tensor.dtype:
            raise IncompatibleWeightsError(
                f'tensor {name!r} is {tuple(got.shape)} {got.dtype}, the network needs '
                f'{tuple(tensor.shape)} {tensor.dtype}')


def load_into(model, loaded):
    """Copy verified weights into `model` after check_compatible."""
    check_compatible(loaded, model)
    model.load_state_dict(loaded.tensors, strict=True)
    return model


def build_from_weights(loaded, device='cpu'):
    """Build a network of the variant and config the weights record, holding them (eval mode)."""
    meta = loaded.metadata
    model = build_q_network(meta.variant, meta.config)
    return load_into(model, loaded).to(device).eval()


def load_model(source, device='cpu', expected_sha256=None):
    """Read, verify and build: returns (network, WeightsMetadata)."""
    loaded = read_weights(source, expected_sha256)
    return build_from_weights(loaded, device), loaded.metadata
