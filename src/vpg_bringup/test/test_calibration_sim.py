"""End to end in the MuJoCo cell: the calibrate tool recovers the simulated camera's pose."""

import os
from pathlib import Path
import subprocess
import sys

import pytest
from vpg_perception.calibration import load_calibration, pose_difference

scene = pytest.importorskip('vpg_sim.scene', reason='vpg_sim (MuJoCo cell) not available')

SIM_CALIBRATION = (Path(__file__).resolve().parents[2] / 'vpg_sim' / 'config'
                   / 'camera_calibration.yaml')


def start(module, *ros_args, **kwargs):
    # os.environ is copied whole: the ROS wheels re-exec python with their library path.
    return subprocess.Popen([sys.executable, '-m', module, '--ros-args', *ros_args],
                            env=dict(os.environ), **kwargs)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_calibration_recovers_sim_camera_pose(tmp_path):
    truth = load_calibration(SIM_CALIBRATION)
    output = tmp_path / 'camera_calibration.yaml'
    offset = ','.join(str(v) for v in scene.CALIBRATION_MARKER_OFFSET)
    sim = start('vpg_sim.sim_node', '-p', 'calibration_marker:=true', '-p', 'num_objects:=0',
                '-p', 'real_time_factor:=4.0')
    try:
        tool = subprocess.run(
            [sys.executable, '-m', 'vpg_bringup.calibration_tool', '--ros-args',
             '-p', 'use_sim_time:=true', '-p', f'output_file:={output}',
             '-p', f'marker_offset:=[{offset}]', '-p', 'model:=ur5e_menagerie',
             '-p', 'grid.x_min:=-0.5', '-p', 'grid.x_max:=-0.3', '-p', 'grid.step:=0.1',
             '-p', 'min_move_time:=0.5', '-p', 'settle_time:=0.3',
             '-p', f'reference_file:={SIM_CALIBRATION}'],
            env=dict(os.environ), capture_output=True, text=True, timeout=400)
    finally:
        stop(sim)
    assert tool.returncode == 0, tool.stderr[-3000:]
    result = load_calibration(output)
    distance, angle = pose_difference(result.base_T_camera, truth.base_T_camera)
    assert distance < 0.005, f'camera position off by {distance * 1000:.2f} mm'
    assert angle < 0.5, f'camera rotation off by {angle:.3f} deg'
    assert result.depth_scale == pytest.approx(truth.depth_scale, abs=0.01)


@pytest.mark.slow
def test_heightmap_node_on_the_sim_camera():
    """The sim's camera topics + its calibration file give a flat table, then the blocks."""
    from builtin_interfaces.msg import Duration
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from vpg_interfaces.srv import GetHeightmap, ResetScene
    from vpg_perception.conversions import heightmap_from_msg

    sim = start('vpg_sim.sim_node', '-p', 'num_objects:=0', '-p', 'real_time_factor:=4.0')
    node_proc = start('vpg_perception.heightmap_node', '-p', 'use_sim_time:=true',
                      '-p', f'calibration_file:={SIM_CALIBRATION}')
    context = rclpy.Context()
    rclpy.init(context=context)
    client_node = rclpy.create_node('heightmap_sim_client', context=context,
                                    parameter_overrides=[Parameter('use_sim_time', value=True)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client_node)

    def call(client, request, timeout):
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), 'service call timed out'
        return future.result()

    try:
        get = client_node.create_client(GetHeightmap, 'get_heightmap')
        reset = client_node.create_client(ResetScene, '/sim/reset_scene')
        assert get.wait_for_service(timeout_sec=30) and reset.wait_for_service(timeout_sec=30)
        response = call(get, GetHeightmap.Request(timeout=Duration(sec=20)), 60)
        assert response.success, response.message
        color, height, grid = heightmap_from_msg(response.heightmap)
        seen = color.any(axis=-1)
        assert seen.mean() > 0.6, 'the camera sees too little of the workspace'
        assert np.percentile(height[seen], 99) < 0.003, 'empty table is not flat at z_min'

        assert call(reset, ResetScene.Request(num_objects=8, seed=4), 120).success
        settled = client_node.get_clock().now().to_msg()  # sim time: blocks at rest
        newer = call(get, GetHeightmap.Request(newer_than=settled, timeout=Duration(sec=20)),
                     60)
        assert newer.success, newer.message
        _, height, _ = heightmap_from_msg(newer.heightmap)
        # VPG's blocks are 2.5 to 10 cm tall.
        assert (height > 0.02).sum() > 300
        assert 0.04 < np.percentile(height, 99.9) < 0.12
    finally:
        executor.shutdown()
        client_node.destroy_node()
        rclpy.shutdown(context=context)
        stop(node_proc)
        stop(sim)
