"""Hand-made transitions on small synthetic heightmaps, shared by the trainer's tests."""

import numpy as np

from vpg_trainer.replay import TransitionRecord

SIZE = 64


def scene(rng, boxes=3, size=SIZE):
    """Draw `boxes` square blocks 4 cm tall; return (color, height, boxes)."""
    color = np.full((size, size, 3), 120, np.uint8)
    height = np.zeros((size, size), np.float32)
    placed = []
    for _ in range(boxes):
        r, c = (int(v) for v in rng.integers(8, size - 8, 2))
        s = int(rng.integers(3, 6))
        height[r - s:r + s, c - s:c + s] = 0.04
        color[r - s:r + s, c - s:c + s] = rng.integers(0, 255, 3)
        placed.append((r, c, s))
    return color, height, placed


def transition(rng, size=SIZE, **overrides):
    """
    Make a transition whose reward follows a fixed rule the network can learn.

    Grasps pay 1 on a block and 0 elsewhere; pushes pay 0.5 when they start on a block.
    """
    color, height, boxes = scene(rng, size=size)
    grasp = bool(rng.random() < 0.6)
    if rng.random() < 0.5:
        r, c, _ = boxes[int(rng.integers(len(boxes)))]
        row, col = r, c
    else:
        row, col = (int(v) for v in rng.integers(0, size, 2))
    on_block = bool(height[row, col] > 0.01)
    reward = (1.0 if on_block else 0.0) if grasp else (0.5 if on_block else 0.0)
    values = {
        'color_before': color, 'height_before': height, 'color_after': color.copy(),
        'height_after': height.copy(), 'primitive': int(grasp),
        'rotation_index': int(rng.integers(16)), 'num_rotations': 16, 'row': row, 'col': col,
        'reward': reward, 'grasp_success': grasp and on_block,
        'push_changed': (not grasp) and on_block, 'changed_pixels': 400 if on_block else 0,
        'scene_changed': on_block,
        'grid': {'resolution': 0.002}, 'cell_name': 'cell0', 'episode_id': 1, 'step': 0,
        'stamp_ns': int(rng.integers(1, 2 ** 62))}
    values.update(overrides)
    return TransitionRecord(**values)
