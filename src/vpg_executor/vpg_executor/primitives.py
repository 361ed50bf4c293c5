"""
VPG's push and grasp primitives as sequences of safe TCP moves on a MotionBackend.

Grasp (VPG): top-down, jaw angle = rotation; approach from above, open, descend to
`grasp_depth` below the local surface (never below the envelope's z_min), close, lift, read the
fingers: neither fully open nor fully closed = holding. A descent stopped on contact rises by
`contact_lift` before closing, so the fingertips' dip while closing does not sweep the blocks.
A held object is carried to the drop-off pose outside the workspace and released.
Push (VPG): fingers closed, start at the chosen point, move `push_length` straight along the
rotation angle (the end clipped to the workspace, as VPG does), retreat upwards.
The descents and the push stroke are guarded moves: when a finger lands on an object (or a
push is stopped by the clutter) the arm stops there and the primitive goes on from that
point, as VPG's simulated arm did, instead of pressing on until a timeout. Given the heightmap
the target was chosen from, a descent runs at full speed down to `descent_clearance` above
the highest point within `footprint_radius` of the target and at the guarded speed only below:
contact can only happen there, and the slow part is most of a primitive's time otherwise.
"""

from dataclasses import dataclass

import numpy as np

from vpg_executor.motion import MotionError
from vpg_executor.safety import TargetRejected, TopDownPose


@dataclass(frozen=True)
class PrimitiveConfig:
    """Geometry of the primitives, metres and radians (base frame)."""

    approach_height: float = 0.15
    """Height above the target from which the TCP descends and to which it retreats."""
    grasp_depth: float = 0.03
    """How far below the local surface the fingertip centre goes for a grasp."""
    contact_lift: float = 0.02
    """
    After a grasp descent stopped on contact, rise this far (m) before closing. The 2F-85's
    fingertips dip 13 mm while closing (4.5 mm below the pinch point open, 17.7 mm closed, in
    the Menagerie model; Robotiq documents the vertical motion): closing where they landed
    would sweep them through whatever stands beside the object they landed on, a push in
    disguise. 13 mm plus the few mm a move may still be short when it counts as arrived
    (arrival_tolerance) and the fingers start closing: 20 mm. With 13 mm, failed corner grasps
    in the MuJoCo cell still moved blocks 2.4-4.5 mm at 1 rad/s; with 20 mm, under 1 mm.
    0 closes where the descent stopped.
    """
    descent_clearance: float = 0.04
    """
    With a heightmap given, descents slow to the guarded speed this far (m) above the highest
    point around the target. The closed 2F-85's fingertips reach 17.7 mm below the pinch point
    (Menagerie model); 40 mm leaves 22 mm for depth noise and calibration error.
    """
    footprint_radius: float = 0.07
    """
    Radius (m) around the target whose highest heightmap point bounds the fast descent: half
    the open 2F-85's 85 mm stroke, the fingertips' own width and a 15 mm margin.
    """
    push_height: float = 0.025
    """Fingertip-centre height above the table during a push (raised over taller surfaces)."""
    push_depth: float = 0.03
    """When the push starts on an object, how far below its top the fingers go."""
    push_length: float = 0.1
    lift_height: float = 0.2
    """TCP height after a grasp, before the fingers are read."""
    retreat_height: float = 0.15
    """
    go_home first rises straight up to this TCP height when below it. A completed push
    retreats to at least push_height + approach_height and a grasp lifts to lift_height, so
    only a primitive cut short rises here.
    """
    grasp_open_threshold: float = 0.05
    """Closure at or below this after closing means the fingers did not close (jammed)."""
    grasp_closed_threshold: float = 0.93
    """Closure at or above this means the fingers closed on nothing."""
    dropoff: tuple = (-0.5, 0.38, 0.2)
    """Where held objects are released, outside the workspace (x, y, z)."""
    workspace: tuple = (-0.724, -0.276, -0.224, 0.224)
    """Box the policy's targets must lie in: x_min, x_max, y_min, y_max."""
    home_joints: tuple = (-0.7342, -2.395, 1.9908, -1.1666, -1.5708, 0.8366)
    """
    Joint configuration out of the camera's view, used between primitives.

    The default puts the TCP at (-0.2, 0, 0.35) m pointing down, between the robot base and the
    workspace: out of view of a camera beyond the workspace (the MuJoCo cell's start pose).
    """


@dataclass(frozen=True)
class GraspOutcome:
    success: bool
    closure: float


def highest_point_near(heightmap, x, y, radius):
    """
    Highest surface (base-frame z) of a heightmap within radius of (x, y); None without one.

    heightmap: anything with .height ((H, W) metres above the grid's z_min; holes hold 0) and
    .grid (x_min, y_min, z_min, resolution, as vpg_perception's HeightmapGrid), or None.
    """
    if heightmap is None or getattr(heightmap, 'grid', None) is None:
        return None
    height, grid = np.asarray(heightmap.height, dtype=np.float64), heightmap.grid
    rows, cols = np.ogrid[:height.shape[0], :height.shape[1]]
    cx = grid.x_min + (cols + 0.5) * grid.resolution
    cy = grid.y_min + (rows + 0.5) * grid.resolution
    near = (cx - x) ** 2 + (cy - y) ** 2 <= radius ** 2
    values = height[near]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return float(grid.z_min + values.max())


def holding(closure, config):
    """Apply VPG's grasp test: fingers neither fully open nor fully closed after lifting."""
    return config.grasp_open_threshold < closure < config.grasp_closed_threshold


class PrimitiveExecutor:
    """Runs push, grasp and go_home on a backend; every target goes through its envelope."""

    def __init__(self, backend, config=PrimitiveConfig()):
        self.backend = backend
        self.config = config

    def _check_target(self, x, y, angle):
        values = np.array([x, y, angle], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise TargetRejected(f'non-finite primitive target {values.tolist()}')
        x_min, x_max, y_min, y_max = self.config.workspace
        if not (x_min <= x <= x_max and y_min <= y <= y_max):
            raise TargetRejected(f'primitive target ({x:.3f}, {y:.3f}) outside the workspace')

    def go_home(self):
        """
        Move to home_joints; from below retreat_height, rise straight up to it first.

        A primitive cut short (a move read as blocked) can leave the fingers among the
        objects, and a joint-space move from there sweeps them through the clutter while the
        wrist turns; the rise lifts them clear first.
        """
        x, y, z = (float(v) for v in self.backend.current_tcp_position())
        if z < self.config.retreat_height:
            self.backend.move_to(TopDownPose(x, y, self.config.retreat_height,
                                             self.backend.current_tcp_yaw()), linear=True)
        self.backend.move_joints(np.array(self.config.home_joints))

    def _descend(self, x, y, z, yaw, start_z, heightmap):
        """
        Guarded descent to z; full speed first where the heightmap shows free space.

        Returns True when the fingers reached z, False when they landed on something.
        """
        cfg = self.config
        top = highest_point_near(heightmap, x, y, cfg.footprint_radius)
        if top is not None:
            fast_z = top + cfg.descent_clearance
            if z < fast_z < start_z:
                if not self.backend.move_to(TopDownPose(x, y, fast_z, yaw), linear=True,
                                            guarded=True, speed=0.0):
                    return False
        return self.backend.move_to(TopDownPose(x, y, z, yaw), linear=True, guarded=True)

    def grasp(self, position, angle, heightmap=None):
        """
        Grasp at position (x, y, local surface z) with the jaws closing along `angle`.

        heightmap: the map the target was chosen from (see highest_point_near), for a fast
        descent through free space; None descends at the guarded speed all the way.
        Raises TargetRejected for a target outside the workspace (nothing moved) and
        MotionError when the arm cannot get there (the arm retreats up if it can).
        """
        x, y, surface = (float(v) for v in position)
        self._check_target(x, y, angle)
        cfg = self.config
        yaw = float(angle)
        grasp_z = surface - cfg.grasp_depth
        above = TopDownPose(x, y, max(surface, 0.0) + cfg.approach_height, yaw)
        self.backend.set_gripper(False)
        self.backend.move_to(above)
        try:
            landed = not self._descend(x, y, grasp_z, yaw, above.z, heightmap)
            if landed and cfg.contact_lift > 0:
                z = float(self.backend.current_tcp_position()[2]) + cfg.contact_lift
                try:
                    self.backend.move_to(TopDownPose(x, y, z, yaw), linear=True)
                except MotionError:
                    # Read as blocked (e.g. an arm springing back after pressing hard): the
                    # backend holds it where it is, and the grasp closes there, as it did
                    # before the rise.
                    pass
            self.backend.set_gripper(True)
        finally:
            self.backend.move_to(TopDownPose(x, y, cfg.lift_height, yaw), linear=True)
        closure = self.backend.gripper_closure()
        success = holding(closure, cfg)
        if success:
            dx, dy, dz = cfg.dropoff
            self.backend.move_to(TopDownPose(dx, dy, dz, yaw))
        self.backend.set_gripper(False)
        return GraspOutcome(success, closure)

    def push_end(self, x, y, angle):
        """End point of a push from (x, y) along angle, clipped to the workspace like VPG."""
        x_min, x_max, y_min, y_max = self.config.workspace
        return (float(np.clip(x + self.config.push_length * np.cos(angle), x_min, x_max)),
                float(np.clip(y + self.config.push_length * np.sin(angle), y_min, y_max)))

    def push(self, position, angle, heightmap=None):
        """
        Push from position (x, y, local surface z) along `angle` with closed fingers.

        heightmap: as for grasp, for a fast descent through free space.
        """
        x, y, surface = (float(v) for v in position)
        self._check_target(x, y, angle)
        cfg = self.config
        # Jaws broadside to the push direction, so the closed fingers sweep a wide front.
        yaw = float(angle) + np.pi / 2
        z = max(cfg.push_height, surface - cfg.push_depth)
        end_x, end_y = self.push_end(x, y, angle)
        self.backend.set_gripper(True)
        start_z = max(surface, 0.0) + cfg.approach_height
        self.backend.move_to(TopDownPose(x, y, start_z, yaw))
        try:
            if not self._descend(x, y, z, yaw, start_z, heightmap):
                z = float(self.backend.current_tcp_position()[2])  # landed on an object
            self.backend.move_to(TopDownPose(end_x, end_y, z, yaw), linear=True, guarded=True)
        finally:
            self.backend.move_to(
                TopDownPose(end_x, end_y, z + cfg.approach_height, yaw), linear=True)


__all__ = ['GraspOutcome', 'MotionError', 'PrimitiveConfig', 'PrimitiveExecutor',
           'TargetRejected', 'highest_point_near', 'holding']
