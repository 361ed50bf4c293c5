"""UR forward/inverse kinematics: IK solutions reproduce the pose they were asked for."""

import numpy as np
import pytest
from vpg_executor.ur_kinematics import (forward_kinematics, forward_kinematics_batch,
                                        inverse_kinematics, MODELS, nearest_solution,
                                        UR5E_MENAGERIE)


def test_home_pose_matches_menagerie_geometry():
    # Menagerie's home keyframe puts the flange straight down; with the rounded DH values the
    # flange of q = 0 lies at x = a2 + a3, y = -(d4 + d6)... (standard UR zero pose).
    pose = forward_kinematics(np.zeros(6), UR5E_MENAGERIE)
    np.testing.assert_allclose(pose[:3, 3], [-0.425 - 0.392, -0.134 - 0.1, 0.163 - 0.1],
                               atol=1e-12)


@pytest.mark.parametrize('model', sorted(MODELS))
def test_ik_recovers_random_configurations(model):
    params = MODELS[model]
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(300):
        q = rng.uniform(-np.pi, np.pi, 6)
        pose = forward_kinematics(q, params)
        solutions = inverse_kinematics(pose, params)
        assert len(solutions) >= 1, f'no IK solution for reachable q={q}'
        for sol in solutions:
            np.testing.assert_allclose(forward_kinematics(sol, params), pose, atol=1e-6)
        wrapped = (solutions - q + np.pi) % (2 * np.pi) - np.pi
        found += np.any(np.all(np.abs(wrapped) < 1e-5, axis=1))
    assert found >= 295  # the original configuration is among the solutions


def test_unreachable_pose_gives_no_solution():
    pose = np.eye(4)
    pose[:3, 3] = [2.0, 0.0, 0.3]
    assert inverse_kinematics(pose, UR5E_MENAGERIE).shape == (0, 6)


def test_nearest_solution_unwraps_and_respects_limits():
    seed = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 6.0])
    pose = forward_kinematics(seed, UR5E_MENAGERIE)
    q = nearest_solution(inverse_kinematics(pose, UR5E_MENAGERIE), seed)
    np.testing.assert_allclose(q, seed, atol=1e-6)
    assert nearest_solution(inverse_kinematics(pose, UR5E_MENAGERIE), seed,
                            joint_lower=-np.ones(6) * 0.1, joint_upper=np.ones(6) * 0.1) is None


@pytest.mark.parametrize('bad', [np.zeros(5), np.array([0, 0, 0, np.nan, 0, 0])])
def test_bad_joint_vectors_raise(bad):
    with pytest.raises(ValueError):
        forward_kinematics(bad)


def test_batch_forward_kinematics_matches_single():
    q = np.random.default_rng(3).uniform(-np.pi, np.pi, (20, 6))
    batch = forward_kinematics_batch(q, UR5E_MENAGERIE)
    for qi, transform in zip(q, batch):
        np.testing.assert_allclose(transform, forward_kinematics(qi, UR5E_MENAGERIE), atol=1e-12)
