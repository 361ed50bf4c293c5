"""
The safety envelope every commanded target passes through, whatever the policy outputs.

Policy:
- Tool (TCP) positions must be finite and inside the envelope box; a position outside the box is
  refused (TargetRejected), never silently moved, except the height: a target below `z_min`
  (the lowest the TCP may go above the table) is raised to `z_min`, because VPG grasps aim
  below the local surface on purpose and the table must never be reached.
- Joint targets must be finite and inside the joint limits (refused otherwise).
- Joint motion is timed so no joint exceeds `max_joint_speed`.
Pure numpy; the motion backends call it for every pose and joint target they command.
"""

from dataclasses import dataclass, field

import numpy as np


class TargetRejected(ValueError):
    """A target outside the safety envelope; the robot was not moved."""


@dataclass(frozen=True)
class TopDownPose:
    """A top-down TCP pose: fingertip centre (x, y, z) in the base frame, jaw yaw (radians)."""

    x: float
    y: float
    z: float
    yaw: float

    @property
    def position(self):
        return np.array([self.x, self.y, self.z])


def _default_lower():
    return (-2 * np.pi, -2 * np.pi, -np.pi, -2 * np.pi, -2 * np.pi, -2 * np.pi)


def _default_upper():
    return (2 * np.pi, 2 * np.pi, np.pi, 2 * np.pi, 2 * np.pi, 2 * np.pi)


@dataclass(frozen=True)
class SafetyEnvelope:
    """Limits on TCP positions (metres, base frame), joint angles (rad) and joint speed (rad/s)."""

    x_min: float = -0.85
    x_max: float = -0.15
    y_min: float = -0.45
    y_max: float = 0.45
    z_min: float = 0.02
    z_max: float = 0.55
    joint_lower: tuple = field(default_factory=_default_lower)
    joint_upper: tuple = field(default_factory=_default_upper)
    max_joint_speed: float = 1.0

    def __post_init__(self):
        values = np.r_[self.x_min, self.x_max, self.y_min, self.y_max, self.z_min, self.z_max,
                       self.joint_lower, self.joint_upper, self.max_joint_speed]
        if not np.all(np.isfinite(values)):
            raise ValueError('safety envelope values must be finite')
        if not (self.x_min < self.x_max and self.y_min < self.y_max
                and self.z_min < self.z_max):
            raise ValueError('safety envelope box needs min < max on every axis')
        if len(self.joint_lower) != 6 or len(self.joint_upper) != 6 or np.any(
                np.asarray(self.joint_lower) >= np.asarray(self.joint_upper)):
            raise ValueError('joint limits need 6 lower < upper pairs')
        if self.max_joint_speed <= 0:
            raise ValueError('max_joint_speed must be > 0')

    def check_pose(self, pose):
        """
        Return the pose as it will be commanded, or raise TargetRejected.

        Only z may change: raised to z_min when below it.
        """
        values = np.array([pose.x, pose.y, pose.z, pose.yaw], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise TargetRejected(f'non-finite target {values.tolist()}')
        if not (self.x_min <= pose.x <= self.x_max and self.y_min <= pose.y <= self.y_max):
            raise TargetRejected(
                f'target ({pose.x:.3f}, {pose.y:.3f}) outside the envelope x '
                f'[{self.x_min}, {self.x_max}], y [{self.y_min}, {self.y_max}]')
        if pose.z > self.z_max:
            raise TargetRejected(f'target z {pose.z:.3f} above the envelope ({self.z_max})')
        return TopDownPose(float(pose.x), float(pose.y), float(max(pose.z, self.z_min)),
                           float(pose.yaw))

    def contains_pose(self, pose, tol=1e-9):
        """Whether a pose lies inside the box (used to verify what was commanded)."""
        return bool(np.all(np.isfinite([pose.x, pose.y, pose.z, pose.yaw]))
                    and self.x_min - tol <= pose.x <= self.x_max + tol
                    and self.y_min - tol <= pose.y <= self.y_max + tol
                    and self.z_min - tol <= pose.z <= self.z_max + tol)

    def check_joints(self, q):
        """Return q as a float array, or raise TargetRejected for non-finite or out-of-limit q."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise TargetRejected(f'joint target must be 6 finite angles, got {q.tolist()}')
        lower, upper = np.asarray(self.joint_lower), np.asarray(self.joint_upper)
        if np.any(q < lower) or np.any(q > upper):
            raise TargetRejected(f'joint target {np.round(q, 3).tolist()} outside joint limits')
        return q

    def min_duration(self, q_from, q_to):
        """Shortest time (s) to move between joint vectors within max_joint_speed."""
        return float(np.max(np.abs(np.asarray(q_to) - np.asarray(q_from)))) / self.max_joint_speed
