"""
The project's challenging test cases: layouts of flush blocks, written in VPG's test-case format.

Each case is a few clusters of blocks resting flush (1 mm apart) so that a parallel-jaw grasp
alone fails often: no block of a cluster has two opposite faces free, or the free faces are
farther apart than the gripper opens (85 mm). A cluster is laid out in its own frame from the
blocks' footprints and then turned and placed in the workspace. Resting heights come from the
block primitives (lowest point 1 mm above the table, as in VPG's saved cases), so nothing
starts in contact with the table or another block.

`python -m vpg_evaluation.case_layouts [--out DIR]` writes the files (one object a line,
`<mesh> r g b x y z alpha beta gamma`, formatted as VPG's create.py writes them, line i in VPG
colour i % 10); `check_in_cell` loads a case in the MuJoCo cell core and reports whether every
block starts apart from the others, settles where it was placed and lies inside the workspace.
What each case tests is listed in CASES and in test_cases/README.md.
"""

import argparse
from dataclasses import dataclass
import math
from pathlib import Path

import mujoco
import numpy as np
from vpg_sim import blocks
from vpg_sim.cell import BlockState, Cell

GAP = 0.001          # m between neighbouring blocks, and between a block and the table
CYLINDER_SIDES = 48  # points per cap used to bound a cylinder
WORKSPACE_X = (-0.724, -0.276)
WORKSPACE_Y = (-0.224, 0.224)


def _rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _quat_matrix(quat):
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _matrix_quat(rotation):
    """Quaternion (w, x, y, z) of a rotation matrix (Shepperd's method)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        quat = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s,
                (m[1, 0] - m[0, 1]) / s)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        quat = [0.0] * 4
        quat[0] = (m[k, j] - m[j, k]) / s
        quat[1 + i] = 0.25 * s
        quat[1 + j] = (m[j, i] + m[i, j]) / s
        quat[1 + k] = (m[k, i] + m[i, k]) / s
    quat = np.array(quat)
    return quat if quat[0] >= 0 else -quat


# How each shape rests on the table, as the rotation from its V-REP shape frame to the world
# (see vpg-blocks README section 2 for the shape frames).
X_UP = _rot_y(-math.pi / 2)  # shape +x to world +z: shape y stays y, shape z goes to -x
RESTS = {
    'cube': np.eye(3),
    'long_cuboid_standing': np.eye(3),           # 100 mm along z
    'long_cuboid_lying': _rot_x(math.pi / 2),    # 100 mm along y
    'arch': X_UP,                                # feet down, notch through along y
    'triangular_prism': X_UP,                    # base down, ridge along y
    'square_slab': X_UP,                         # 25 mm thick
    'flat_cuboid': X_UP,                         # 25 mm thick, 100 mm along x
    'half_cylinder': X_UP,                       # flat face down, axis along x
    'cylinder_standing': X_UP,                   # axis vertical
}
_REST_SHAPE = {'long_cuboid_standing': 'long_cuboid', 'long_cuboid_lying': 'long_cuboid',
               'cylinder_standing': 'cylinder'}


def shape_points(shape):
    """Points (K, 3) in the shape frame whose convex hull bounds the block (m)."""
    points = []
    for primitive in blocks.load_shapes()[shape].primitives:
        rotation = _quat_matrix(primitive.quat)
        if primitive.kind == 'box':
            corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1)
                                for sz in (-1, 1)]) * np.asarray(primitive.size)
        elif primitive.kind == 'cylinder':
            radius, half = primitive.size
            angles = np.linspace(0.0, 2 * math.pi, CYLINDER_SIDES, endpoint=False)
            ring = np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])
            corners = np.vstack([np.column_stack([ring, np.full(len(ring), z)])
                                 for z in (-half, half)])
        else:
            corners = np.asarray(primitive.vertices, dtype=np.float64)
        points.append(corners @ rotation.T + np.asarray(primitive.pos))
    return np.vstack(points)


@dataclass(frozen=True)
class Block:
    """A block in a cluster's frame: rest (key of RESTS), turn about z (rad), centre (u, v)."""

    rest: str
    yaw: float = 0.0
    u: float = 0.0
    v: float = 0.0

    @property
    def shape(self):
        return _REST_SHAPE.get(self.rest, self.rest)

    def rotation(self, turn=0.0):
        return _rot_z(turn + self.yaw) @ RESTS[self.rest]

    def footprint(self):
        """Half extents (du, dv) of the block's bounding box in the cluster frame (m)."""
        points = shape_points(self.shape) @ self.rotation().T
        low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        return (high - low) / 2, (high + low) / 2


def row(rests, axis=0, yaw=0.0):
    """Blocks side by side along u (axis 0) or v (axis 1), GAP apart, centred on 0."""
    items = [Block(rest, yaw) for rest in rests]
    spans = [item.footprint() for item in items]
    total = sum(2 * half[axis] for half, _ in spans) + GAP * (len(items) - 1)
    position = -total / 2
    placed = []
    for item, (half, centre) in zip(items, spans):
        along = position + half[axis] - centre[axis]
        across = -centre[1 - axis]
        u, v = (along, across) if axis == 0 else (across, along)
        placed.append(Block(item.rest, yaw, u, v))
        position += 2 * half[axis] + GAP
    return placed


def rows(*row_rests, yaw=0.0):
    """Rows along u stacked along v, GAP apart, centred on 0."""
    made = [row(rests, 0, yaw) for rests in row_rests]
    depths = [max(2 * b.footprint()[0][1] for b in r) for r in made]
    total = sum(depths) + GAP * (len(made) - 1)
    position = -total / 2
    placed = []
    for blocks_in_row, depth in zip(made, depths):
        placed += [Block(b.rest, b.yaw, b.u, b.v + position + depth / 2)
                   for b in blocks_in_row]
        position += depth + GAP
    return placed


def hexagon(rest, spacing):
    """Seven blocks: one in the middle and six around it, centres `spacing` apart."""
    ring = [Block(rest, 0.0, spacing * math.cos(k * math.pi / 3),
                  spacing * math.sin(k * math.pi / 3)) for k in range(6)]
    return [Block(rest)] + ring


@dataclass(frozen=True)
class Cluster:
    """Blocks in a cluster frame, placed with its origin at (x, y) and turned by `turn`."""

    blocks: tuple
    x: float
    y: float
    turn: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    purpose: str
    clusters: tuple


def case_objects(case):
    """List a case's ObjectSpecs: poses in the base frame, colours in VPG's line order."""
    objects = []
    for cluster in case.clusters:
        turn = _rot_z(cluster.turn)
        for block in cluster.blocks:
            rotation = block.rotation(cluster.turn)
            lowest = float((shape_points(block.shape) @ rotation.T)[:, 2].min())
            x, y, _ = turn @ np.array([block.u, block.v, 0.0])
            index = len(objects)
            objects.append(blocks.ObjectSpec(
                shape=block.shape, rgba=(*blocks.COLOURS[index % len(blocks.COLOURS)], 1.0),
                position=(cluster.x + x, cluster.y + y, GAP - lowest),
                quat=tuple(_matrix_quat(rotation))))
    return objects


def format_vpg(objects):
    """Write objects as a VPG test case: `<mesh> r g b x y z alpha beta gamma`, as create.py."""
    shapes = blocks.load_shapes()
    lines = []
    for obj in objects:
        values = (*obj.rgba[:3], *obj.position, *blocks.quat_to_euler(obj.quat))
        # + 0.0 turns -0.0 into 0.0
        lines.append(shapes[obj.shape].mesh_file + ''.join(f' {v + 0.0:.18e}' for v in values))
    return '\n'.join(lines) + '\n'


LYING = 'long_cuboid_lying'  # 100 mm along v, 50 mm wide and high


def weave():
    """Four lying cuboids side by side, closed at both ends by two cuboids end to end."""
    ends = [Block(LYING, math.pi / 2, u, v) for v in (-0.076, 0.076) for u in (-0.0505, 0.0505)]
    return tuple(ends + [Block(LYING, 0.0, u, 0.0) for u in (-0.0765, -0.0255, 0.0255, 0.0765)])


# Why these defeat a first grasp (the 2F-85 opens 85 mm; VPG's blocks are 50 mm wide, the long
# cuboid 100 mm long): a lying long cuboid fits the gripper only across its 50 mm width, so a
# block whose long sides both touch a neighbour (or one touches and the other is the cluster's
# end) cannot be straddled: the finger that must go down beside it lands on the neighbour's top
# at the same height. A push along a cuboid's axis slides it out of the raft, after which it
# can be grasped across its width: the cases need a push. Selected with the graspability
# oracle (vpg_evaluation.oracle: at most 10 % of first grasps succeed, and some push makes a
# grasp succeed); results/cases/oracle.json holds its figures.
CASES = (
    Case('cuboid_raft',
         'Four long cuboids lying side by side (200 x 100 mm): each fits the gripper only '
         'across its 50 mm width, and there a neighbour is flush; the ends are 100 mm apart.',
         (Cluster(tuple(row([LYING] * 4)), -0.5, 0.0, math.radians(-10)),)),
    Case('cuboid_raft_three',
         'Three long cuboids lying side by side, turned 40 degrees, off the workspace centre.',
         (Cluster(tuple(row([LYING] * 3)), -0.6, 0.08, math.radians(40)),)),
    Case('cuboid_raft_five',
         'Five long cuboids lying side by side (250 x 100 mm), turned 80 degrees.',
         (Cluster(tuple(row([LYING] * 5)), -0.5, -0.02, math.radians(80)),)),
    Case('cuboid_rafts',
         'Two rafts of three lying long cuboids, one straight, one turned 70 degrees.',
         (Cluster(tuple(row([LYING] * 3)), -0.6, -0.1, 0.0),
          Cluster(tuple(row([LYING] * 3)), -0.42, 0.1, math.radians(70)))),
    Case('cuboid_block',
         'Six lying long cuboids in two rows of three, end to end (150 x 200 mm): the ends '
         'are flush too, so a cuboid cannot be slid out without moving its partner.',
         (Cluster(tuple(rows([LYING] * 3, [LYING] * 3)), -0.5, 0.0, math.radians(20)),)),
    Case('cuboid_weave',
         'Four lying long cuboids side by side, closed at both ends by pairs of cuboids lying '
         'across them (200 x 200 mm): every block is flush on its long sides or its ends.',
         (Cluster(weave(), -0.5, 0.0, math.radians(25)),)),
    Case('cuboid_pairs',
         'Three pairs of long cuboids lying side by side (100 x 100 mm each). A cuboid can only '
         'be grasped across its 50 mm width, and there its neighbour is flush; its free ends '
         'are 100 mm apart, wider than the gripper opens.',
         (Cluster(tuple(row([LYING] * 2)), -0.6, -0.1, 0.0),
          Cluster(tuple(row([LYING] * 2)), -0.6, 0.1, math.radians(60)),
          Cluster(tuple(row([LYING] * 2)), -0.4, 0.0, math.radians(-30)))),
    Case('arch_row',
         'Five arches side by side along their 50 mm depth: each arch is 100 mm long and flush '
         'with its neighbours in the only direction it fits the gripper.',
         (Cluster(tuple(row(['arch'] * 5, axis=1)), -0.5, 0.0, math.radians(-15)),)),
    Case('plank_raft',
         'Four flat cuboids (25 mm high, 50 x 100 mm) side by side along their long edges '
         '(100 x 200 mm): low, and graspable only across the 50 mm width, where a neighbour '
         'is flush.',
         (Cluster(tuple(row(['flat_cuboid'] * 4, axis=1)), -0.5, 0.02, math.radians(30)),)),
    Case('plank_rafts',
         'Two rafts of three flat cuboids side by side, one turned 90 degrees to the other.',
         (Cluster(tuple(row(['flat_cuboid'] * 3, axis=1)), -0.6, 0.1, 0.0),
          Cluster(tuple(row(['flat_cuboid'] * 3, axis=1)), -0.42, -0.08, math.radians(90)))),
    Case('staggered_raft',
         'Four lying long cuboids side by side, every other one slid 20 mm along its axis: '
         'each still has flush neighbours along 80 mm of its sides.',
         (Cluster(tuple(Block(b.rest, b.yaw, b.u, b.v + (0.01 if k % 2 else -0.01))
                        for k, b in enumerate(row([LYING] * 4))), -0.52, 0.05,
                  math.radians(55)),)),
    Case('mixed_rafts',
         'Two lying long cuboids side by side and, apart from them, three flat cuboids side '
         'by side: two heights, both flush.',
         (Cluster(tuple(row([LYING] * 2)), -0.6, -0.09, math.radians(-20)),
          Cluster(tuple(row(['flat_cuboid'] * 3, axis=1)), -0.43, 0.1, math.radians(15)))),
)


@dataclass(frozen=True)
class CellCheck:
    """What loading a case in the cell showed."""

    objects: int
    deepest_penetration: float
    """m: most negative signed distance of a block contact before any step (0 = none)."""
    largest_shift: float
    """m: largest distance a block centre moved while settling."""
    largest_turn: float
    """rad: largest rotation of a block while settling."""
    outside: tuple
    """Indices of blocks with some point outside the workspace after settling."""
    removed: int

    def problems(self, max_penetration=0.0005, max_shift=0.003, max_turn=math.radians(3)):
        found = []
        if -self.deepest_penetration > max_penetration:
            found.append(f'blocks start {-1000 * self.deepest_penetration:.1f} mm inside each '
                         'other')
        if self.largest_shift > max_shift:
            found.append(f'a block moved {1000 * self.largest_shift:.1f} mm while settling')
        if self.largest_turn > max_turn:
            found.append(f'a block turned {math.degrees(self.largest_turn):.1f} degrees while '
                         'settling')
        if self.outside:
            found.append(f'blocks {list(self.outside)} reach outside the workspace')
        if self.removed:
            found.append(f'{self.removed} blocks count as removed')
        return found


def check_in_cell(objects, cell=None):
    """
    Place objects in the MuJoCo cell core (vpg_sim.cell, no ROS), settle, report a CellCheck.

    Contacts are read before the first step (interpenetration as placed), poses after
    settling (shift, turn and whether the whole block lies inside the workspace).
    """
    cell = cell or Cell()
    cell.reset(objects)
    model, data = cell.model, cell.data
    block_body = {model.body(f'block{i}').id for i in range(len(objects))}
    deepest = 0.0
    for contact in data.contact[:data.ncon]:
        bodies = {int(model.geom_bodyid[g]) for g in contact.geom}
        if bodies & block_body:
            deepest = min(deepest, float(contact.dist))
    cell.settle()
    shift = turn = 0.0
    outside, removed = [], 0
    for index, (obj, state, position, quat) in enumerate(cell.block_poses()):
        if state is not BlockState.IN_SCENE:
            removed += 1
            continue
        shift = max(shift, float(np.linalg.norm(position - np.asarray(obj.position))))
        relative = np.zeros(4)
        mujoco.mju_mulQuat(relative, quat, np.array([obj.quat[0], *(-np.asarray(obj.quat[1:]))]))
        turn = max(turn, 2 * math.acos(min(1.0, abs(float(relative[0])))))
        points = shape_points(obj.shape) @ _quat_matrix(quat).T + position
        if (points[:, 0].min() < WORKSPACE_X[0] or points[:, 0].max() > WORKSPACE_X[1]
                or points[:, 1].min() < WORKSPACE_Y[0] or points[:, 1].max() > WORKSPACE_Y[1]):
            outside.append(index)
    return CellCheck(len(objects), deepest, shift, turn, tuple(outside), removed)


README_HEAD = """\
# Challenging test cases

Written by `python -m vpg_evaluation.case_layouts` from the layouts in
`vpg_evaluation/case_layouts.py` (edit those, not these files). VPG's test-case format,
one block a line, exactly as VPG's `create.py` writes it, so VPG's own code can load them too
(it reads lines by position, so the files carry no comments):

    <mesh> r g b x y z alpha beta gamma

`<mesh>` is a VPG block mesh (`0.obj` ... `8.obj`), r g b its colour (line i takes VPG's colour
i % 10), x y z the position of the block's V-REP shape frame in the robot base frame (metres; the
same frame in VPG's simulation and in our MuJoCo cell) and alpha beta gamma V-REP Euler angles
(radians, R = Rx Ry Rz). Blocks rest 1 mm above the table and 1 mm from their neighbours; every
block lies wholly inside the workspace (x -0.724..-0.276, y -0.224..0.224 m), so N (VPG's
`--num_obj_complete`) is the number of lines. A test loads each case in the cell and checks that
nothing starts interpenetrating, moves more than 3 mm while settling or leaves the workspace.

The cases are meant to need a push: each was kept because the graspability oracle
(`python -m vpg_evaluation.oracle`, see ../README.md) found that at most 10 % of the first
grasps on its grid succeed in the MuJoCo cell and that some push followed by a grasp succeeds;
its figures are in `results/cases/oracle.json`. Rerun it when the cell's contact physics
changes.

| case | blocks | what it tests |
|---|---|---|
"""


def readme_text(cases=CASES):
    """Write test_cases/README.md's text: the format, and what each case is meant to test."""
    lines = [f'| `{case.name}.txt` | {len(case_objects(case))} | {case.purpose} |'
             for case in cases]
    return README_HEAD + '\n'.join(lines) + '\n'


def write_cases(directory, cases=CASES):
    """Write <name>.txt for every case and README.md into directory; returns the case paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = directory / f'{case.name}.txt'
        path.write_text(format_vpg(case_objects(case)), encoding='utf-8')
        paths.append(path)
    (directory / 'README.md').write_text(readme_text(cases), encoding='utf-8')
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=str(Path(__file__).resolve().parents[1] / 'test_cases'),
                        help='folder for the .txt files')
    parser.add_argument('--no-check', action='store_true', help='skip loading each case')
    args = parser.parse_args(argv)
    status = 0
    for path in write_cases(args.out):
        line = f'{path}: {len(blocks.load_test_case(path))} blocks'
        if not args.no_check:
            check = check_in_cell(blocks.load_test_case(path))
            problems = check.problems()
            status |= bool(problems)
            depth = max(0.0, -1000 * check.deepest_penetration)
            line += (f', penetration {depth:.2f} mm, shift '
                     f'{1000 * check.largest_shift:.2f} mm, turn '
                     f'{math.degrees(check.largest_turn):.2f} deg'
                     + (': ' + '; '.join(problems) if problems else ''))
        print(line)
    return status


if __name__ == '__main__':
    raise SystemExit(main())
