"""
Checkpoints of a training run: weights, optimiser state and a `latest.json` that points at them.

A checkpoint is complete once `latest.json` names it: the weights (safetensors, atomic write)
and the optimiser state are written first, the pointer last (also atomically), so a kill at any
moment leaves the previous checkpoint intact. Only the newest `keep` weight files are kept.
"""

from dataclasses import asdict, dataclass
import io
import json
import os
from pathlib import Path
import time

import torch

from vpg_common.files import file_sha256
from vpg_policy.weights import save_weights, write_atomically

LATEST = 'latest.json'


@dataclass(frozen=True)
class Checkpoint:
    """What latest.json records."""

    version: int
    weights: str
    """Absolute path of the safetensors file."""
    sha256: str
    optimizer: str
    """Absolute path of the optimiser state ('' when none was saved)."""
    updates: int
    trained_through: int
    """Replay id of the newest transition trained on before this checkpoint."""
    wall_time: float


class CheckpointStore:
    """The checkpoints/ folder of a run."""

    def __init__(self, folder, keep=5):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = max(int(keep), 1)

    def latest(self):
        """Return the newest complete Checkpoint, or None for a fresh run."""
        path = self.folder / LATEST
        if not path.exists():
            return None
        try:
            values = json.loads(path.read_text())
            return Checkpoint(**values)
        except (ValueError, TypeError) as error:
            raise ValueError(f'{path} is unreadable ({error}); restore it or start a new run '
                             'folder') from error

    def weights_path(self, version):
        return self.folder / f'weights_v{int(version):06d}.safetensors'

    def save(self, model, version, optimizer=None, updates=0, trained_through=0, extra=None):
        """Write weights (+ optimiser) at `version`, then point latest.json at them."""
        weights = self.weights_path(version)
        sha256 = save_weights(weights, model, version,
                              extra={'updates': str(updates), **(extra or {})})
        optimizer_path = ''
        if optimizer is not None:
            buffer = io.BytesIO()
            torch.save(optimizer.state_dict(), buffer)
            optimizer_path = str(self.folder / 'optimizer.pt')
            write_atomically(optimizer_path, buffer.getvalue())
        checkpoint = Checkpoint(int(version), str(weights.resolve()), sha256, optimizer_path,
                                int(updates), int(trained_through), time.time())
        write_atomically(self.folder / LATEST,
                         (json.dumps(asdict(checkpoint), indent=2) + '\n').encode())
        self._prune(version)
        return checkpoint

    def load_optimizer(self, checkpoint, optimizer):
        """Restore optimiser state saved with a checkpoint (no-op when none was saved)."""
        if checkpoint.optimizer and os.path.exists(checkpoint.optimizer):
            state = torch.load(checkpoint.optimizer, map_location='cpu', weights_only=True)
            optimizer.load_state_dict(state)

    def verify(self, checkpoint):
        """Raise ValueError unless the checkpoint's weights have the recorded sha256."""
        actual = file_sha256(checkpoint.weights)
        if actual != checkpoint.sha256:
            raise ValueError(f'{checkpoint.weights}: sha256 {actual[:12]} differs from the '
                             f'recorded {checkpoint.sha256[:12]}')

    def _prune(self, newest):
        files = sorted(self.folder.glob('weights_v*.safetensors'))
        for old in files[:-self.keep]:
            if old != self.weights_path(newest):
                old.unlink(missing_ok=True)
