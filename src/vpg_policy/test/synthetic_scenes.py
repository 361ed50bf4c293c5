"""Random colour and height maps with a few boxes, for network tests."""

import numpy as np


def scene(size=64, seed=0):
    """(colour (size, size, 3) uint8, height (size, size) float32 with four boxes)."""
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    height = np.zeros((size, size), np.float32)
    for _ in range(4):
        r, c = rng.integers(4, size - 12, 2)
        height[r:r + rng.integers(3, 9), c:c + rng.integers(3, 9)] = rng.uniform(0.02, 0.06)
    return color, height
