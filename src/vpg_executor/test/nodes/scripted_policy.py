"""
Test-only policy node: grasps the largest object blob across its narrow side, no learning.

Serves ChoosePrimitive at `choose_primitive` like the policy node, so the executor can be
tested end to end before any network is trained.
"""

import math

import cv2
import numpy as np
from rclpy.node import Node
from vpg_common.node_runner import run_node
from vpg_interfaces.msg import PrimitiveAction
from vpg_interfaces.srv import ChoosePrimitive
from vpg_perception.conversions import heightmap_from_msg

NUM_ROTATIONS = 16


def choose_grasp(height, grid, object_height=0.02):
    """Pixel, angle and surface height of a grasp across the largest blob, or None."""
    mask = (np.nan_to_num(height) > object_height).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    rows, cols = np.nonzero(labels == label)
    row, col = int(round(rows.mean())), int(round(cols.mean()))
    covariance = np.cov(np.stack([cols, rows]).astype(np.float64))
    _, vectors = np.linalg.eigh(covariance)
    narrow = vectors[:, 0]  # x = col, y = row: the base frame's axes
    angle = math.atan2(narrow[1], narrow[0]) % math.pi
    return row, col, angle, float(height[labels == label].max())


class ScriptedPolicy(Node):

    def __init__(self):
        super().__init__('policy')
        self.create_service(ChoosePrimitive, 'choose_primitive', self._on_choose)

    def _on_choose(self, request, response):
        try:
            _, height, grid = heightmap_from_msg(request.heightmap)
        except ValueError as error:
            response.success, response.message = False, str(error)
            return response
        grasp = choose_grasp(height, grid)
        if grasp is None:
            response.success, response.message = False, 'nothing to grasp'
            return response
        row, col, angle, surface = grasp
        point = grid.pixel_to_point(row, col, surface)
        step = 2 * math.pi / NUM_ROTATIONS
        index = int(round(angle / step)) % NUM_ROTATIONS
        action = PrimitiveAction(primitive=PrimitiveAction.GRASP, rotation_index=index,
                                 num_rotations=NUM_ROTATIONS, angle=index * step, row=row,
                                 col=col, q_value=float('nan'))
        action.header = request.heightmap.header
        action.position.x, action.position.y, action.position.z = (float(v) for v in point)
        response.success, response.action = True, action
        return response


def main():
    # run_node, not rclpy.spin: rclpy's signal handler can shut the context down while spin
    # builds its wait set, and the node then exits 1 on a plain stop (see node_runner).
    return run_node(ScriptedPolicy, 'scripted_policy')


if __name__ == '__main__':
    raise SystemExit(main())
