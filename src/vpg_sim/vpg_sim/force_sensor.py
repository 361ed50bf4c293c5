"""
The UR e-Series flange force/torque sensor as the cell reports it: contact wrench + noise + offset.

ur_robot_driver publishes the TCP wrench through ros2_controllers' force_torque_sensor_broadcaster
(`/force_torque_sensor_broadcaster/wrench`, geometry_msgs/WrenchStamped, frame `tool0_controller`,
one message per controller cycle: 500 Hz on an e-Series). The reading is payload-compensated, so
at rest and out of contact it is an offset that drifts (the driver's `zero_ftsensor` service
tares it). The cell computes the true contact wrench (Cell.tool_wrench); this module adds
Gaussian noise and a constant offset, so that consumers must tare, as on the robot. Pure numpy.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ForceSensorConfig:
    """
    Noise and offset of the simulated sensor.

    force_noise_std: N per axis; torque_noise_std: N m per axis (Gaussian, independent per
        sample).
    force_offset: N (3,), added to every reading: the untared offset of a real sensor.
    """

    force_noise_std: float = 1.0
    torque_noise_std: float = 0.02
    force_offset: tuple = (0.0, 0.0, 0.0)

    def __post_init__(self):
        if self.force_noise_std < 0 or self.torque_noise_std < 0:
            raise ValueError('noise standard deviations must be >= 0')
        if len(self.force_offset) != 3 or not np.all(np.isfinite(self.force_offset)):
            raise ValueError('force_offset needs 3 finite numbers (N)')


class ForceSensor:
    """Turns true contact wrenches into sensor readings (seeded, so runs repeat)."""

    def __init__(self, config=ForceSensorConfig(), seed=0):
        self.config = config
        self._rng = np.random.default_rng(seed)
        self._offset = np.asarray(config.force_offset, dtype=np.float64)

    def read(self, force, torque):
        """Return (force (3,), torque (3,)) as the sensor reports the true wrench."""
        c = self.config
        noisy_force = np.asarray(force, dtype=np.float64) + self._offset
        noisy_torque = np.asarray(torque, dtype=np.float64).copy()
        if c.force_noise_std > 0:
            noisy_force = noisy_force + self._rng.normal(0.0, c.force_noise_std, 3)
        if c.torque_noise_std > 0:
            noisy_torque = noisy_torque + self._rng.normal(0.0, c.torque_noise_std, 3)
        return noisy_force, noisy_torque
