"""
Scripted arm motions for tests and benchmarks: IK on the cell model and waypoint timing.

Damped-least-squares IK on MuJoCo's site Jacobian, using the cell's own kinematic model, so
no frame bookkeeping can go wrong. The executor has its own (analytic) UR IK; this module only
serves to drive the simulated cell through its public topics in tests and bench/sim.py.
Pure numpy + MuJoCo, no ROS.
"""

import math

import mujoco
import numpy as np

from vpg_sim import scene

# A top-down start pose (pinch about 0.33 m above the table, over the workspace): IK seeds
# from here stay on the elbow-up, wrist-down branch.
TOP_DOWN_SEED = np.array([0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0])


def top_down_rotation(angle):
    """
    Rotation of the pinch frame pointing straight down with the fingers closing along angle.

    angle (rad) is measured in the table plane from base +x; returns a 3x3 matrix.
    """
    z = np.array([0.0, 0.0, -1.0])
    y = np.array([math.cos(angle), math.sin(angle), 0.0])
    return np.column_stack([np.cross(y, z), y, z])


class ArmIk:
    """Inverse kinematics of a site (default: the pinch point) on a model of the cell."""

    def __init__(self, model=None, site=scene.PINCH_SITE):
        self._model = model if model is not None else scene.build_model()
        self._data = mujoco.MjData(self._model)
        self._site = self._model.site(site).id
        self._qadr = np.array([self._model.jnt_qposadr[self._model.joint(j).id]
                               for j in scene.ARM_JOINTS])
        self._dofs = np.array([self._model.jnt_dofadr[self._model.joint(j).id]
                               for j in scene.ARM_JOINTS])
        self._lower = np.array([self._model.joint(j).range[0] for j in scene.ARM_JOINTS])
        self._upper = np.array([self._model.joint(j).range[1] for j in scene.ARM_JOINTS])

    def forward(self, q):
        """Site position (3,) and rotation (3, 3) in the base frame for arm joints q (6,)."""
        self._data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self._model, self._data)
        return (self._data.site_xpos[self._site].copy(),
                self._data.site_xmat[self._site].reshape(3, 3).copy())

    def solve(self, position, rotation, seed=TOP_DOWN_SEED, iterations=200, damping=1e-2,
              tolerance=1e-5):
        """
        Joint angles (6,) putting the site at position (3,) with rotation (3, 3).

        Raises ValueError if the pose is not reached within 1 mm / ~0.01 rad.
        """
        jac_pos = np.zeros((3, self._model.nv))
        jac_rot = np.zeros((3, self._model.nv))
        q = np.array(seed, dtype=np.float64)
        error = np.full(6, np.inf)
        for _ in range(iterations):
            current_pos, current_rot = self.forward(q)
            rot_error = 0.5 * sum(np.cross(current_rot[:, i], rotation[:, i]) for i in range(3))
            error = np.concatenate([np.asarray(position) - current_pos, rot_error])
            if np.linalg.norm(error) < tolerance:
                break
            mujoco.mj_comPos(self._model, self._data)
            mujoco.mj_jacSite(self._model, self._data, jac_pos, jac_rot, self._site)
            jac = np.vstack([jac_pos, jac_rot])[:, self._dofs]
            q = q + jac.T @ np.linalg.solve(jac @ jac.T + damping ** 2 * np.eye(6), error)
            q = np.clip(q, self._lower, self._upper)
        if np.linalg.norm(error[:3]) > 1e-3 or np.linalg.norm(error[3:]) > 1e-2:
            raise ValueError(f'IK did not converge for {position} (error {error})')
        return q

    def top_down(self, position, angle, seed=TOP_DOWN_SEED):
        """IK for the pinch point at position (3,), pointing down, fingers along angle."""
        return self.solve(position, top_down_rotation(angle), seed=seed)


def move_duration(q_from, q_to, max_velocity=2.0, min_duration=0.2):
    """
    Seconds for a joint move whose peak speed stays under max_velocity (rad/s).

    A cubic with zero end velocities peaks at 1.5 times its mean speed.
    """
    distance = float(np.max(np.abs(np.asarray(q_to) - np.asarray(q_from))))
    return max(min_duration, 1.5 * distance / max_velocity)


def waypoint_times(waypoints, start, max_velocity=2.0, min_duration=0.2):
    """Cumulative arrival times (s) for joint waypoints (n, 6) starting from start (6,)."""
    times = []
    t = 0.0
    previous = np.asarray(start)
    for q in waypoints:
        t += move_duration(previous, q, max_velocity, min_duration)
        times.append(t)
        previous = np.asarray(q)
    return times
