"""
Benchmark of the MuJoCo cell (vpg_sim): primitives per wall second and render time.

Starts the `sim` node in a subprocess (real_time_factor 0, 10 random blocks), then drives
grasps and pushes alternately through its public topics as the executor would: for each
primitive it waits for a fresh RGB-D frame with the arm out of view, picks the top face of the
highest block from the depth image (camera_info + calibration file; this stand-in for
perception and policy is not timed), and runs the primitive (gripper action goals, joint
trajectories from IK, arrival read from /joint_states), ending out of view again. A grasp
opens, comes down, closes, lifts 0.1 m, judges success from the finger joint and releases.
Then it times rendering in this process: one RGB + depth pass of the 10-block scene, and
mujoco.Renderer's two passes for comparison, plus the raw physics speed of the same scene as a
reference for the machine's load. Last line:
{"bench": "sim", "primitives_per_s": ..., "render_ms": ...}.

Usage (from the repository root, after `. tools/env.sh`):
    python bench/sim.py [--primitives 20] [--seed 3]
Timings depend on the machine's load; run it on a quiet machine.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault('MUJOCO_GL', 'egl')  # MuJoCo picks its GL backend when imported

import cv2  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from vpg_sim import scene  # noqa: E402
from vpg_sim.camera import RgbdRenderer  # noqa: E402
from vpg_sim.cell import Cell  # noqa: E402
from vpg_sim.depth_model import D415  # noqa: E402
from vpg_test_support import camera_calibration  # noqa: E402
from vpg_test_support.cell_client import CellClient  # noqa: E402


# Motion settings of the scripted executor: joint speeds up to 3 rad/s (the UR5e allows pi),
# approach and lift 0.1 m, pushes at 0.2 m/s.
MAX_VELOCITY = 3.0
APPROACH = 0.1
PUSH_SPEED = 0.2


def pick_target(frame, calib, workspace=((-0.724, -0.276), (-0.224, 0.224))):
    """
    Grasp target from a depth frame: the top face of the highest block.

    Returns (x, y, z_top, angle): the centroid of the image region connected to the highest
    point whose points lie within 12 mm below it, its height, and the angle across the
    region's narrow side (rad).
    """
    _, _, depth_mm, info, _ = frame
    points = camera_calibration.back_project(depth_mm.astype(np.float64) / 1000.0, info.k, calib)
    (x0, x1), (y0, y1) = workspace
    inside = ((points[..., 0] > x0 + 0.02) & (points[..., 0] < x1 - 0.02)
              & (points[..., 1] > y0 + 0.02) & (points[..., 1] < y1 - 0.02))
    z = np.where(inside, points[..., 2], -np.inf)
    top_pixel = np.unravel_index(np.nanargmax(z), z.shape)
    top = points[top_pixel]
    mask = (inside & (points[..., 2] > top[2] - 0.012)).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask)
    face = points[labels == labels[top_pixel]][:, :2]
    centre = face.mean(axis=0)
    if len(face) > 3:
        _, vectors = np.linalg.eigh(np.cov((face - centre).T))
        major = vectors[:, -1]
        angle = math.atan2(major[1], major[0]) + math.pi / 2
    else:
        angle = 0.0
    angle = (angle + math.pi / 2) % math.pi - math.pi / 2
    return centre[0], centre[1], top[2], angle


def run_primitives(count, seed):
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vpg_sim.sim_node', '--ros-args', '-p', 'real_time_factor:=0.0',
         '-p', f'seed:={seed}', '-p', 'num_objects:=10', '--log-level', 'warn'], env=env)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_sim', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    client = CellClient(node, lambda t: executor.spin_once(timeout_sec=t), camera=True)
    calib = camera_calibration.load_calibration()
    rng = np.random.default_rng(seed)
    try:
        client.wait_until_ready(timeout=60.0)
        assert client.ik is not None  # build the IK model before timing
        response = client.reset_scene(num_objects=10, seed=seed)
        print(f'scene: {response.message}')
        client.go_clear()
        timings = {'grasp': [], 'push': [], 'frame_wait': [], 'pick_target': []}
        sim_start = client.sim_time()
        wall_start = time.perf_counter()
        grasps = 0
        for i in range(count):
            t0 = time.perf_counter()
            frame = client.frame_after(client.last_move_end)
            timings['frame_wait'].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            x, y, top, jaw = pick_target(frame, calib)
            timings['pick_target'].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            if i % 2 == 0:
                success, _ = client.grasp((x, y, max(top - 0.02, 0.02)), jaw, approach=APPROACH,
                                          lift=APPROACH, max_velocity=MAX_VELOCITY)
                grasps += success
                client.gripper(0.0)  # release: a lifted block leaves the scene
                client.go_clear(max_velocity=MAX_VELOCITY)
                timings['grasp'].append(time.perf_counter() - t0)
            else:
                angle = rng.uniform(-math.pi, math.pi)
                start = (x - 0.05 * math.cos(angle), y - 0.05 * math.sin(angle), 0.025)
                start = (float(np.clip(start[0], -0.7, -0.3)), float(np.clip(start[1], -0.2, 0.2)),
                         start[2])
                client.push(start, angle, length=0.1, speed=PUSH_SPEED, approach=APPROACH,
                            max_velocity=MAX_VELOCITY)
                client.go_clear(max_velocity=MAX_VELOCITY)
                timings['push'].append(time.perf_counter() - t0)
        wall = time.perf_counter() - wall_start
        sim = client.sim_time() - sim_start
        # The bench's own target picking stands in for perception and the policy: not timed.
        busy = wall - sum(timings['pick_target'])
        counts = client.count_objects()
        print(f'{count} primitives in {busy:.2f} s wall (+{wall - busy:.2f} s picking targets, '
              f'not counted), {sim:.1f} s simulated ({sim / wall:.1f}x real time); successful '
              f'grasps {grasps}/{(count + 1) // 2}; blocks left in workspace '
              f'{counts.in_workspace}, removed {counts.removed}')
        for key, values in timings.items():
            if values:
                print(f'  {key:11s} median {statistics.median(values) * 1000:7.1f} ms wall '
                      f'(n={len(values)})')
        return count / busy, timings
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def time_rendering(seed, repeats=30):
    cell = Cell()
    cell.reset_random(10, seed)
    cell.settle()
    model, data = cell.model, cell.data
    renderer = RgbdRenderer(model)
    rng = np.random.default_rng(seed)
    single, convert = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rgb, depth = renderer.render(data)
        t1 = time.perf_counter()
        D415.apply(depth, rgb, rng, scene.FOCAL_LENGTH_PX)
        t2 = time.perf_counter()
        single.append(t1 - t0)
        convert.append(t2 - t1)
    renderer.close()
    start = time.perf_counter()
    steps = cell.advance_to(cell.time + 2.0)
    elapsed = time.perf_counter() - start
    print(f'reference: bare physics of this scene {steps / elapsed:.0f} steps/s = '
          f'{2.0 / elapsed:.1f}x real time (no ROS, no rendering)')
    two_pass_rgb, two_pass_depth = [], []
    reference = mujoco.Renderer(model, scene.IMAGE_HEIGHT, scene.IMAGE_WIDTH)
    for _ in range(repeats):
        t0 = time.perf_counter()
        reference.update_scene(data, scene.CAMERA)
        reference.render()
        t1 = time.perf_counter()
        reference.enable_depth_rendering()
        reference.update_scene(data, scene.CAMERA)
        reference.render()
        reference.disable_depth_rendering()
        t2 = time.perf_counter()
        two_pass_rgb.append(t1 - t0)
        two_pass_depth.append(t2 - t1)
    reference.close()
    ms = {name: 1000 * statistics.median(values) for name, values in (
        ('rgbd_one_pass', single), ('d415_depth_model', convert), ('renderer_rgb', two_pass_rgb),
        ('renderer_depth', two_pass_depth))}
    print(f'render (median of {repeats}, MUJOCO_GL={os.environ.get("MUJOCO_GL")}): '
          f'RGB + depth in one pass {ms["rgbd_one_pass"]:.1f} ms, D415 depth model -> 16UC1 '
          f'{ms["d415_depth_model"]:.1f} ms; mujoco.Renderer RGB {ms["renderer_rgb"]:.1f} ms + '
          f'depth '
          f'{ms["renderer_depth"]:.1f} ms')
    return ms['rgbd_one_pass'] + ms['d415_depth_model']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--primitives', type=int, default=20)
    parser.add_argument('--seed', type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f'cpus {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}')
    rate, _ = run_primitives(args.primitives, args.seed)
    render_ms = time_rendering(args.seed)
    print(json.dumps({'bench': 'sim', 'primitives_per_s': round(rate, 3),
                      'render_ms': round(render_ms, 1)}))


if __name__ == '__main__':
    main()
