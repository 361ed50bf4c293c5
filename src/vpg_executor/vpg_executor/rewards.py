"""
Rewards and scene checks from the robot's own sensors, as VPG computes them.

Push: the scene changed when more than `change_threshold` heightmap pixels changed height by
between 0.01 and 0.3 m (VPG). Grasp: success from the finger closure only. The table counts as
empty when fewer than `empty_threshold` pixels stand more than 0.02 m above it (VPG: 10 px in
simulation testing, 300 otherwise).
"""

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class RewardConfig:
    """VPG's reward values and scene thresholds."""

    grasp_reward: float = 1.0
    push_reward: float = 0.5
    change_min: float = 0.01
    """Smallest height change (m) that counts as a changed pixel."""
    change_max: float = 0.3
    """Largest height change (m) that counts (bigger ones are sensor glitches)."""
    change_threshold: int = 300
    """Changed pixels needed for a push to count as a change."""
    object_height: float = 0.02
    """Pixels higher than this above the table belong to objects, metres."""
    empty_threshold: int = 10
    """The table is empty when fewer object pixels than this remain."""
    min_object_pixels: int = 30
    """Smallest blob counted as an object when counting what remains."""


def changed_pixels(height_before, height_after, config=RewardConfig()):
    """Count the pixels whose height changed by (change_min, change_max) metres; NaN = 0."""
    delta = np.abs(np.nan_to_num(height_after) - np.nan_to_num(height_before))
    return int(np.count_nonzero((delta > config.change_min) & (delta < config.change_max)))


def scene_changed(height_before, height_after, config=RewardConfig()):
    return changed_pixels(height_before, height_after, config) > config.change_threshold


def table_empty(height, config=RewardConfig()):
    object_pixels = np.count_nonzero(np.nan_to_num(height) > config.object_height)
    return int(object_pixels) < config.empty_threshold


def count_objects(height, config=RewardConfig()):
    """Count blobs of at least min_object_pixels object pixels (touching objects count as one)."""
    mask = (np.nan_to_num(height) > config.object_height).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= config.min_object_pixels))


def reward(primitive_is_grasp, grasp_success, push_changed, config=RewardConfig()):
    """Return VPG's reward: grasp_reward for a held object, push_reward for a changing push."""
    if primitive_is_grasp:
        return config.grasp_reward if grasp_success else 0.0
    return config.push_reward if push_changed else 0.0
