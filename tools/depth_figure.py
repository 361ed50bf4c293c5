"""
Colour, depth and height map of one cell scene, with exact depth and with the D415 model.

    python tools/depth_figure.py --out docs/fidelity/depth_model.png [--seed 3]

Renders a random 10-block scene in the MuJoCo cell, converts its depth with the `ideal` and
the `d415` depth models (vpg_sim.depth_model), builds VPG's heightmaps from each with the
cell's calibration, and writes a 2 x 3 image (rows: ideal, d415; columns: colour, depth, height
map). Black in the depth and height images is "no data".
"""

import argparse
import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from vpg_perception.calibration import load_calibration  # noqa: E402
from vpg_perception.heightmap import colorize_height, HeightmapBuilder  # noqa: E402
from vpg_sim import depth_model, scene  # noqa: E402
from vpg_sim.camera import RgbdRenderer  # noqa: E402
from vpg_sim.cell import Cell  # noqa: E402


def _depth_image(millimetres, near=700, far=900):
    scaled = np.clip((millimetres.astype(np.float32) - near) / (far - near), 0, 1)
    image = cv2.applyColorMap((255 * (1 - scaled)).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    image[millimetres == 0] = 0
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _tile(image, size=(320, 240)):
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='docs/fidelity/depth_model.png')
    parser.add_argument('--seed', type=int, default=3)
    args = parser.parse_args(argv)
    from vpg_bringup.graph import sim_calibration_file
    calibration = load_calibration(sim_calibration_file())
    cell = Cell()
    cell.reset_random(10, args.seed)
    cell.settle()
    renderer = RgbdRenderer(cell.model)
    rgb, depth = renderer.render_qpos(cell.model, cell.data.qpos)
    renderer.close()
    fx, fy, cx, cy = scene.camera_intrinsics(cell.model)
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    builder = HeightmapBuilder()
    rows = []
    for name in ('ideal', 'd415'):
        model = depth_model.profile(name)
        millimetres = model.apply(depth, rgb, np.random.default_rng(args.seed), fx)
        maps = builder.build(rgb, millimetres.astype(np.float32) / 1000.0, k,
                             calibration.base_T_camera, calibration.depth_scale)
        height = colorize_height(maps.height, 0.15)
        height[~maps.observed] = 0
        rows.append(np.hstack([_tile(rgb), _tile(_depth_image(millimetres)),
                               _tile(height, (240, 240))[:240]]))
        invalid = np.mean(millimetres == 0)
        print(f'{name}: {100 * invalid:.1f} % of depth pixels without data, '
              f'{100 * np.mean(~maps.observed):.1f} % of heightmap cells unobserved')
    figure = np.vstack(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
