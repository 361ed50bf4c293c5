"""
Forward and analytic inverse kinematics of Universal Robots arms (UR5, UR5e, ...).

Frames follow the UR Denavit-Hartenberg convention: the base frame is the UR controller's
`base` frame (z up; ur_description's `base_link` is the same frame turned by pi about z), the
tool frame is `tool0` (the flange). The MuJoCo Menagerie UR5e model uses the same base frame,
and its `attachment_site` is `tool0`. Pure numpy.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class URParameters:
    """Standard DH lengths of a UR arm, metres (a1 = a4 = a5 = a6 = d2 = d3 = 0)."""

    d1: float
    a2: float
    a3: float
    d4: float
    d5: float
    d6: float

    @cached_property
    def alpha(self):
        return np.array([np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0])

    @cached_property
    def a(self):
        return np.array([0.0, self.a2, self.a3, 0.0, 0.0, 0.0])

    @cached_property
    def d(self):
        return np.array([self.d1, 0.0, 0.0, self.d4, self.d5, self.d6])


# Universal Robots' published DH parameters.
UR5 = URParameters(d1=0.089159, a2=-0.425, a3=-0.39225, d4=0.10915, d5=0.09465, d6=0.0823)
UR5E = URParameters(d1=0.1625, a2=-0.425, a3=-0.3922, d4=0.1333, d5=0.0997, d6=0.0996)
# The rounded values the MuJoCo Menagerie UR5e model is built with (matches it to 1e-13 m).
UR5E_MENAGERIE = URParameters(d1=0.163, a2=-0.425, a3=-0.392, d4=0.134, d5=0.1, d6=0.1)

MODELS = {'ur5': UR5, 'ur5e': UR5E, 'ur5e_menagerie': UR5E_MENAGERIE}


def _dh(theta, d, a, alpha):
    ct, st, ca, sa = np.cos(theta), np.sin(theta), np.cos(alpha), np.sin(alpha)
    return np.array([[ct, -st * ca, st * sa, a * ct],
                     [st, ct * ca, -ct * sa, a * st],
                     [0.0, sa, ca, d],
                     [0.0, 0.0, 0.0, 1.0]])


def forward_kinematics(q, params=UR5E):
    """
    Compute the pose of tool0 in the base frame for joint angles q (6,), radians.

    Returns a 4x4 homogeneous transform base_T_tool0. Raises ValueError for a wrong shape or
    non-finite angles.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (6,) or not np.all(np.isfinite(q)):
        raise ValueError(f'expected 6 finite joint angles, got {q!r}')
    transform = np.eye(4)
    for i in range(6):
        transform = transform @ _dh(q[i], params.d[i], params.a[i], params.alpha[i])
    return transform


def forward_kinematics_batch(q, params=UR5E):
    """
    Compute base_T_tool0 for many joint vectors at once: q (N, 6) -> (N, 4, 4).

    The vectorised twin of forward_kinematics, for checking whole joint paths.
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1, 6)
    transforms = np.broadcast_to(np.eye(4), (len(q), 4, 4)).copy()
    for i in range(6):
        ct, st = np.cos(q[:, i]), np.sin(q[:, i])
        ca, sa = np.cos(params.alpha[i]), np.sin(params.alpha[i])
        link = np.zeros((len(q), 4, 4))
        link[:, 0, 0], link[:, 0, 1], link[:, 0, 2], link[:, 0, 3] = ct, -st * ca, st * sa, \
            params.a[i] * ct
        link[:, 1, 0], link[:, 1, 1], link[:, 1, 2], link[:, 1, 3] = st, ct * ca, -ct * sa, \
            params.a[i] * st
        link[:, 2, 1], link[:, 2, 2], link[:, 2, 3] = sa, ca, params.d[i]
        link[:, 3, 3] = 1.0
        transforms = transforms @ link
    return transforms


def _wrap(angles):
    return (np.asarray(angles) + np.pi) % (2 * np.pi) - np.pi


def inverse_kinematics(pose, params=UR5E, tol=1e-6):
    """
    Solve for all analytic solutions (up to 8) of a tool0 pose base_T_tool0 (4x4).

    Returns an array (n, 6) of joint angles in [-pi, pi), each checked against forward
    kinematics to `tol` metres / radians; n = 0 when the pose is out of reach. Shoulder and
    wrist singularities give a valid representative solution (the free angle set to 0).
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise ValueError('pose must be a finite 4x4 transform')
    d1, a2, a3, d4, d5, d6 = (params.d1, params.a2, params.a3, params.d4, params.d5,
                              params.d6)
    solutions = []
    inv = np.linalg.inv(pose)
    p05 = pose @ np.array([0.0, 0.0, -d6, 1.0])
    r = np.hypot(p05[0], p05[1])
    if r < abs(d4):
        return np.zeros((0, 6))
    phi = np.arctan2(p05[1], p05[0])
    psi = np.arccos(np.clip(d4 / r, -1.0, 1.0))
    for theta1 in (phi + psi + np.pi / 2, phi - psi + np.pi / 2):
        s1, c1 = np.sin(theta1), np.cos(theta1)
        c5 = (pose[0, 3] * s1 - pose[1, 3] * c1 - d4) / d6
        if abs(c5) > 1.0 + 1e-9:
            continue
        base5 = np.arccos(np.clip(c5, -1.0, 1.0))
        for theta5 in (base5, -base5):
            s5 = np.sin(theta5)
            if abs(s5) < 1e-9:
                theta6 = 0.0  # wrist singularity: joints 4 and 6 are aligned
            else:
                theta6 = np.arctan2((-inv[1, 0] * s1 + inv[1, 1] * c1) / s5,
                                    (inv[0, 0] * s1 - inv[0, 1] * c1) / s5)
            t01 = _dh(theta1, d1, 0.0, np.pi / 2)
            t45 = _dh(theta5, d5, 0.0, -np.pi / 2)
            t56 = _dh(theta6, d6, 0.0, 0.0)
            t14 = np.linalg.inv(t01) @ pose @ np.linalg.inv(t45 @ t56)
            p13 = t14 @ np.array([0.0, -d4, 0.0, 1.0])
            p13 = p13[:3]
            norm = np.linalg.norm(p13)
            c3 = (norm ** 2 - a2 ** 2 - a3 ** 2) / (2 * a2 * a3)
            if abs(c3) > 1.0 + 1e-9:
                continue
            base3 = np.arccos(np.clip(c3, -1.0, 1.0))
            for theta3 in (base3, -base3):
                theta2 = (-np.arctan2(p13[1], -p13[0])
                          + np.arcsin(np.clip(a3 * np.sin(theta3) / norm, -1.0, 1.0)))
                t12 = _dh(theta2, 0.0, a2, 0.0)
                t23 = _dh(theta3, 0.0, a3, 0.0)
                t34 = np.linalg.inv(t12 @ t23) @ t14
                theta4 = np.arctan2(t34[1, 0], t34[0, 0])
                solutions.append([theta1, theta2, theta3, theta4, theta5, theta6])
    if not solutions:
        return np.zeros((0, 6))
    candidates = _wrap(np.array(solutions))
    reached = forward_kinematics_batch(candidates, params)
    ok = ((np.linalg.norm(reached[:, :3, 3] - pose[:3, 3], axis=1) < tol)
          & (np.linalg.norm(reached[:, :3, :3] - pose[:3, :3], axis=(1, 2)) < tol * 10))
    candidates = candidates[ok]
    if len(candidates) == 0:
        return np.zeros((0, 6))
    # Singular poses yield the same solution from several branches: keep it once.
    _, first = np.unique(np.round(candidates, 7), axis=0, return_index=True)
    return candidates[np.sort(first)]


def nearest_solution(solutions, q_seed, joint_lower=None, joint_upper=None):
    """
    Pick the solution closest to q_seed, with each joint unwrapped by 2*pi to sit nearest its seed.

    Solutions outside [joint_lower, joint_upper] after unwrapping are dropped. Returns None
    when none remains.
    """
    q_seed = np.asarray(q_seed, dtype=np.float64)
    candidates = q_seed + _wrap(np.asarray(solutions, dtype=np.float64).reshape(-1, 6) - q_seed)
    keep = np.ones(len(candidates), dtype=bool)
    if joint_lower is not None:
        keep &= np.all(candidates >= np.asarray(joint_lower) - 1e-9, axis=1)
    if joint_upper is not None:
        keep &= np.all(candidates <= np.asarray(joint_upper) + 1e-9, axis=1)
    candidates = candidates[keep]
    if len(candidates) == 0:
        return None
    return candidates[np.argmin(np.max(np.abs(candidates - q_seed), axis=1))]
