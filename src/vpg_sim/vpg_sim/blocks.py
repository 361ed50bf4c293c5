"""
VPG's block objects: shapes, colours, random drops and test-case files.

The eight block shapes of Visual Pushing and Grasping (Zeng et al. 2018) are read from
`data/vpg_blocks.json` (MuJoCo primitives in each block's V-REP shape frame, derived from
andyzeng/visual-pushing-grasping, BSD-2-Clause, see `data/VPG_LICENSE`). Poses use VPG's
convention: position of the shape frame in the robot base frame (metres) and V-REP Euler
angles, R = Rx(alpha) @ Ry(beta) @ Rz(gamma).

Test-case files hold one object per line, ten whitespace-separated fields:

    <shape> r g b x y z alpha beta gamma

`<shape>` is either one of VPG's mesh files (`0.obj` ... `8.obj`, any directory prefix, as in
VPG's own `simulation/test-cases/*.txt`) or one of our shape names (`cube`, `arch`, ...; the
project's format, identical otherwise). r, g, b are in 0..1. Blank lines and text after `#`
are ignored. Lines whose z is below -1 m (objects that had already fallen out of VPG's scene
when the case was saved) are skipped. Pure Python + numpy; no MuJoCo or ROS import.
"""

from dataclasses import dataclass
import functools
import json
import math
from pathlib import Path

import numpy as np

SHAPES_FILE = Path(__file__).resolve().parent / 'data' / 'vpg_blocks.json'

# VPG's ten colours (robot.py `color_space`), in line order of its test cases.
COLOUR_NAMES = ('blue', 'green', 'brown', 'orange', 'yellow',
                'gray', 'red', 'purple', 'cyan', 'pink')
COLOURS = np.array([[78, 121, 167], [89, 161, 79], [156, 117, 95], [242, 142, 43],
                    [237, 201, 72], [186, 176, 172], [255, 87, 89], [176, 122, 161],
                    [118, 183, 178], [255, 157, 167]], dtype=np.float64) / 255.0

# Objects below this height in a test-case file had fallen out of VPG's scene: skipped.
_FALLEN_OUT_Z = -1.0


class TestCaseError(ValueError):
    """A test-case file that cannot be read as a list of objects."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class Primitive:
    """
    One collision/visual primitive of a block, in the block's shape frame.

    kind is 'box' (size = half extents), 'cylinder' (size = radius, half length) or 'mesh'
    (a convex vertex set, size unused). quat is (w, x, y, z).
    """

    kind: str
    pos: tuple
    quat: tuple
    size: tuple = ()
    vertices: tuple = ()


@dataclass(frozen=True)
class Shape:
    """A block shape: its name, VPG mesh file, full extents (m) and primitives."""

    name: str
    mesh_file: str
    extents: tuple
    primitives: tuple

    @property
    def radius(self):
        """Half the diagonal of the extents: no point of the block is farther from its origin."""
        return 0.5 * float(np.linalg.norm(self.extents))


@dataclass(frozen=True)
class ObjectSpec:
    """A block to place: shape name, rgba (0..1), position (m) and quaternion (w, x, y, z)."""

    shape: str
    rgba: tuple
    position: tuple
    quat: tuple


def _primitive(entry):
    kind = entry['type']
    pos = tuple(float(v) for v in entry.get('pos', (0.0, 0.0, 0.0)))
    quat = tuple(float(v) for v in entry.get('quat_wxyz', (1.0, 0.0, 0.0, 0.0)))
    if kind == 'box':
        return Primitive('box', pos, quat, size=tuple(entry['size_half_m']))
    if kind == 'cylinder':
        return Primitive('cylinder', pos, quat, size=tuple(entry['size_m']))
    if kind == 'mesh_convex':
        vertices = tuple(tuple(float(c) for c in v) for v in entry['vertices_m'])
        return Primitive('mesh', pos, quat, vertices=vertices)
    raise ValueError(f'unknown primitive type {kind!r} in {SHAPES_FILE.name}')


@functools.lru_cache(maxsize=1)
def load_shapes():
    """
    Read the block shapes, keyed by shape name (e.g. 'cube'), in VPG mesh order.

    Where the data file lists alternative decompositions (notes starting 'alternative'),
    only the first is used.
    """
    data = json.loads(SHAPES_FILE.read_text(encoding='utf-8'))
    shapes = {}
    for mesh_file in sorted(data['shapes']):
        entry = data['shapes'][mesh_file]
        primitives = tuple(
            _primitive(p) for p in entry['mujoco_primitives']
            if not p.get('note', '').lower().startswith('alternative'))
        extents = tuple(float(v) for v in entry['vrep_shape_frame']['dims_along_shape_xyz_m'])
        shapes[entry['shape']] = Shape(entry['shape'], mesh_file, extents, primitives)
    return shapes


def shape_names():
    """All shape names, in VPG mesh-file order (0.obj first)."""
    return tuple(load_shapes())


def shape_for_token(token):
    """Map a test-case shape token (VPG mesh file such as 'objects/blocks/4.obj', or a name)."""
    shapes = load_shapes()
    if token in shapes:
        return token
    base = token.replace('\\', '/').rsplit('/', 1)[-1]
    for shape in shapes.values():
        if shape.mesh_file == base:
            return shape.name
    raise TestCaseError(
        f'unknown shape {token!r}: expected one of {sorted(shapes)} or a VPG mesh file '
        f'{sorted(s.mesh_file for s in shapes.values())}')


def euler_to_quat(alpha, beta, gamma):
    """Quaternion (w, x, y, z) of V-REP Euler angles: R = Rx(alpha) @ Ry(beta) @ Rz(gamma)."""
    def axis_quat(axis, angle):
        q = np.zeros(4)
        q[0] = math.cos(angle / 2)
        q[1 + axis] = math.sin(angle / 2)
        return q
    return tuple(_quat_mul(_quat_mul(axis_quat(0, alpha), axis_quat(1, beta)),
                           axis_quat(2, gamma)))


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                     w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def quat_to_euler(quat):
    """Inverse of euler_to_quat: V-REP Euler angles (alpha, beta, gamma) of (w, x, y, z)."""
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    # R = Rx Ry Rz: R[0,2] = sin(beta), R[1,2] = -sin(alpha)cos(beta), R[0,1] = -cos(beta)sin(g)
    r02 = 2 * (x * z + w * y)
    r12 = 2 * (y * z - w * x)
    r22 = 1 - 2 * (x * x + y * y)
    r01 = 2 * (x * y - w * z)
    r00 = 1 - 2 * (y * y + z * z)
    beta = math.asin(max(-1.0, min(1.0, r02)))
    return math.atan2(-r12, r22), beta, math.atan2(-r01, r00)


def random_objects(num_objects, seed, x_range, y_range, margin=0.1, drop_height=0.15,
                   drop_spacing=0.125):
    """
    Random blocks to drop into the workspace, as VPG does in training.

    Shapes are drawn uniformly from all eight, colours follow line order (i % 10), positions
    are uniform in the workspace shrunk by `margin` (m) on each side, orientations are three
    uniform Euler angles. VPG drops its objects one after another from `drop_height`; here
    object i starts `drop_spacing` (m) above object i-1 so that all fall in one go without
    starting in contact. Same seed, same list.
    """
    if num_objects < 0:
        raise ValueError(f'num_objects must be >= 0, got {num_objects}')
    rng = np.random.default_rng(seed)
    names = shape_names()
    objects = []
    for i in range(num_objects):
        shape = names[int(rng.integers(len(names)))]
        x = rng.uniform(x_range[0] + margin, x_range[1] - margin)
        y = rng.uniform(y_range[0] + margin, y_range[1] - margin)
        angles = rng.uniform(0.0, 2 * math.pi, size=3)
        objects.append(ObjectSpec(
            shape=shape, rgba=(*COLOURS[i % len(COLOURS)], 1.0),
            position=(x, y, drop_height + drop_spacing * i),
            quat=euler_to_quat(*angles)))
    return objects


def parse_test_case(text, source='<string>'):
    """
    Parse a test case (VPG's line format or ours, see the module docstring).

    Returns a list of ObjectSpec. Raises TestCaseError naming the line for a wrong field
    count, a non-numeric or non-finite value, a colour outside 0..1 or an unknown shape.
    """
    objects = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f'{source}:{number}'
        if len(fields) != 10:
            raise TestCaseError(f'{where}: expected 10 fields '
                                f'(shape r g b x y z alpha beta gamma), got {len(fields)}')
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError as error:
            raise TestCaseError(f'{where}: {error}') from None
        if not all(math.isfinite(v) for v in values):
            raise TestCaseError(f'{where}: values must be finite')
        try:
            shape = shape_for_token(fields[0])
        except TestCaseError as error:
            raise TestCaseError(f'{where}: {error}') from None
        rgb, position, angles = values[0:3], values[3:6], values[6:9]
        if not all(0.0 <= c <= 1.0 for c in rgb):
            raise TestCaseError(f'{where}: colour components must lie in 0..1, got {rgb}')
        if position[2] < _FALLEN_OUT_Z:
            continue
        objects.append(ObjectSpec(shape=shape, rgba=(*rgb, 1.0), position=tuple(position),
                                  quat=euler_to_quat(*angles)))
    return objects


def load_test_case(path):
    """Read and parse a test-case file; raises TestCaseError (also for an unreadable file)."""
    try:
        text = Path(path).read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as error:
        raise TestCaseError(f'cannot read test case {path}: {error}') from None
    return parse_test_case(text, source=str(path))


def format_test_case(objects):
    """Write objects in the project's format (shape names), one line each."""
    lines = []
    for obj in objects:
        angles = quat_to_euler(obj.quat)
        values = (*obj.rgba[:3], *obj.position, *angles)
        lines.append(obj.shape + ''.join(f' {v:.9g}' for v in values))
    return '\n'.join(lines) + '\n'
