"""
The robot controller's tool contact stop, as the cell carries it out at every physics step.

On a UR, ur_robot_driver's tool_contact_controller turns on URScript's tool_contact() with the
direction of the target TCP speed (get_target_tcp_speed(); any direction while the target is
at rest), evaluated by the robot controller at its 500 Hz control rate; on a contact the
external_control program stops the arm. UR does not publish the detection threshold. The cell
stands in with the wrench it computes (Cell.tool_wrench, the true contact force, in the base
frame): a contact is a change since arming, opposing the commanded motion, larger than
`threshold` (N). Its step is the UR's control period (2 ms), so the stop comes within one
step of the force crossing the threshold, whatever a ROS node downstream is doing. Pure numpy.
"""

import numpy as np

_AT_REST_SPEED = 1e-3
"""Commanded TCP speed (m/s) below which contacts from every direction count."""


class ToolContactWatch:
    """
    One armed detection: the force at arming is its zero, only the change counts.

    baseline: contact force (3,) N in the base frame when armed; threshold: N.
    """

    def __init__(self, baseline, threshold):
        if not threshold > 0:
            raise ValueError(f'tool contact threshold must be > 0 N, got {threshold}')
        self.baseline = np.asarray(baseline, dtype=float)
        self.threshold = float(threshold)
        self.peak = 0.0
        """Largest force change counted so far (N)."""

    def force_against(self, force, tcp_velocity):
        """Return the force change (N) that counts: against the motion, or its size at rest."""
        change = np.asarray(force, dtype=float) - self.baseline
        velocity = np.asarray(tcp_velocity, dtype=float)
        speed = float(np.linalg.norm(velocity))
        if speed < _AT_REST_SPEED:
            return float(np.linalg.norm(change))
        return float(-(change @ velocity) / speed)

    def could_touch(self, force):
        """
        Whether the force could count as a contact for some motion.

        The counted force is a projection of the change or its size, never more than the size,
        so a change within the threshold is no contact whatever the motion (and the peak,
        which only matters above the threshold, is not needed then).
        """
        change = np.asarray(force, dtype=float) - self.baseline
        return float(change @ change) > self.threshold * self.threshold

    def touched(self, force, tcp_velocity):
        """Whether this reading is a contact (and remember the largest one)."""
        value = self.force_against(force, tcp_velocity)
        self.peak = max(self.peak, value)
        return value > self.threshold


class CellToolContact:
    """
    The cell's tool contact stop as JointTrajectoryBackend's `tool_contact`, for in-process rigs.

    What the sim node serves on the action, called directly: start() arms the cell, triggered()
    reads its stop, end() disarms it. For the probes and the oracle, which drive a Cell with
    the executor's code in one process.
    """

    def __init__(self, cell, threshold):
        self.cell, self.threshold = cell, float(threshold)

    def start(self):
        self.cell.arm_tool_contact(self.threshold)
        return self

    def triggered(self):
        return self.cell.tool_contact_stop is not None

    def end(self):
        self.cell.disarm_tool_contact()
