"""
One policy decision: heightmap -> Q maps -> the push or grasp to execute, with its 3-D point.

VPG's rule: compute push and grasp Q for every pixel and rotation, then grasp unless the best
push Q is strictly higher than the best grasp Q, at that primitive's best pixel and rotation.
Exploration is epsilon-greedy; with probability epsilon the action is drawn at random:

* ``random_primitive`` (VPG): a random allowed primitive, executed at its own best pixel and
  rotation;
* ``random_action``: a random allowed primitive, rotation and pixel, so exploration touches
  objects rather than the empty table: with the action mask on, drawn among the rotations and
  pixels the mask allows (a push starting near an object, a grasp on one and, with the grasp
  clearance mask, only where both pads have room); without it, the pixel among the cells
  higher than ``min_object_height`` (all cells when none is).

Greedy choices can be restricted to where acting makes sense (``ActionMask``, the "common
sense" masking of Hundt et al.'s follow-up to VPG): grasps on object pixels, pushes starting
within a margin of an object. The trainer takes its future-value maximum over the same masks,
so targets and choices agree. An empty table leaves every pixel allowed.

Grasp centring (``grasp_centring`` metres, 0 = off; needs the mask): the network scores Q on
cells eight pixels wide and upsamples them bilinearly, so the masked argmax of a smooth Q map
often sits on the allowed region's edge, where pads close half off the block. With centring,
the grasp goes to the allowed pixel of the same rotation and region, within that radius of the
argmax, that lies deepest inside the allowed region (ties: the nearest to the argmax).

Pure numpy / torch: the policy node and the trainer both use it.
"""

from dataclasses import dataclass, replace
import enum
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Primitive and restriction codes (vpg_common.primitives), here for the policy's users.
from vpg_common.primitives import ALLOW_BOTH, GRASP, GRASP_ONLY, PRIMITIVE_NAMES  # noqa: F401
from vpg_common.primitives import PUSH, PUSH_ONLY  # noqa: F401
from vpg_policy.grasp_clearance import clearance_masks
from vpg_policy.rotations import rotation_angle


class Exploration(str, enum.Enum):
    """What an exploratory (epsilon) draw picks at random."""

    RANDOM_PRIMITIVE = 'random_primitive'
    RANDOM_ACTION = 'random_action'


@dataclass(frozen=True)
class ActionMask:
    """Where greedy actions may go; `enabled=False` is VPG's unrestricted argmax."""

    enabled: bool = True
    min_object_height: float = 0.01
    """Metres; heightmap cells higher than this are objects."""
    grasp_margin: float = 0.004
    """Metres around object cells where a grasp may be centred."""
    push_margin: float = 0.03
    """Metres around object cells where a push may start."""
    grasp_clearance: bool = False
    """
    Also restrict grasps to rotations and pixels where the heightmap leaves room for both open
    pads to go down (vpg_policy.grasp_clearance); the grasp mask is then (R, H, W) and may be
    empty, in packed clutter, when pushing is the only sensible action.
    """
    grasp_depth: float = 0.03
    """Metres below the surface a grasp sends the pinch point (the executor's grasp_depth)."""
    grasp_floor: float = 0.02
    """Metres above the table the pinch point never goes below (the executor's safety.z_min)."""
    grasp_inset: float = 0.0
    """
    Metres a grasp must be centred inside an object's edge (0: off; grasp_margin is then not
    used): grasps centred near an edge close their pads half off the object. An object thinner
    than twice this keeps its middle line.
    """


def _dilate(mask, radius_px):
    if radius_px <= 0:
        return mask
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    size = 2 * radius_px + 1
    grown = F.max_pool2d(tensor, size, stride=1, padding=radius_px)
    return grown[0, 0].numpy() > 0.5


MAX_DROPOUT_AREA = 3.2e-5
"""
m^2; non-object patches this small and enclosed by object cells are depth dropouts (8 cells
at 2 mm): cells no depth point fell into read height 0, and 1.6 % of the object cells of a
training run's heightmaps (D415 model) were such holes, nearly all single cells. No pad fits
into one, so they are not edges.
"""


def dropout_cells(resolution):
    """Cells of MAX_DROPOUT_AREA at this resolution (m per cell): 8 at 2 mm."""
    return int(round(MAX_DROPOUT_AREA / resolution ** 2))


def fill_dropouts(objects, max_cells):
    """
    Return objects (H, W) bool with enclosed non-object patches of max_cells or fewer filled.

    Enclosed: not 4-connected to the map's border (4-connectivity for the background is the
    complement of 8-connected objects). Larger enclosed patches, such as table seen between
    blocks in a ring, stay.
    """
    background = np.ascontiguousarray(~objects, dtype=np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = stats[:, cv2.CC_STAT_AREA] <= max_cells
    small[0] = False  # label 0: the object cells themselves
    small[border] = False
    return objects | small[labels]


def _inset(objects, inset_px, max_dropout_cells=0):
    """
    Object cells at least inset_px from the nearest non-object cell, or on the middle line.

    The middle line: cells whose distance to the edge is within half a cell of the largest
    within inset_px around them, so an object thinner than twice the inset keeps its centre
    cells. Distances from the cell's centre to the edge between it and the nearest non-object
    cell (the transform's centre-to-centre distance less half a cell). Enclosed holes of at
    most max_dropout_cells cells count as object (fill_dropouts): otherwise every dropout in a
    block's top is an edge, with a middle line of its own around it, and the allowed region
    falls apart into specks that centring cannot leave.
    """
    if max_dropout_cells > 0:
        objects = fill_dropouts(objects, max_dropout_cells)
    distance = cv2.distanceTransform(objects.astype(np.uint8), cv2.DIST_L2,
                                     cv2.DIST_MASK_PRECISE) - 0.5
    radius = max(1, int(math.ceil(inset_px)))
    window = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    ridge = distance >= cv2.dilate(distance, window) - 0.5
    return objects & ((distance >= inset_px) | ridge)


def action_masks(height, resolution, mask=ActionMask(), num_rotations=None):
    """
    Boolean masks of allowed push and grasp pixels for a height map: (H, W) each.

    Both are all True when masking is off or no cell is an object (so a decision always
    exists). With mask.grasp_clearance (num_rotations needed) the grasp mask is (R, H, W):
    the object pixels where both pads have room at that rotation; it can be all False.
    """
    height = np.asarray(height)
    full = np.ones(height.shape, dtype=bool)
    if not mask.enabled:
        return full, full
    objects = height > mask.min_object_height
    if not objects.any():
        return full, full
    push = _dilate(objects, int(round(mask.push_margin / resolution)))
    if mask.grasp_inset > 0:
        grasp = _inset(objects, mask.grasp_inset / resolution, dropout_cells(resolution))
    else:
        grasp = _dilate(objects, int(round(mask.grasp_margin / resolution)))
    if mask.grasp_clearance:
        if num_rotations is None:
            raise ValueError('the grasp clearance mask needs num_rotations')
        grasp = grasp[None] & clearance_masks(height, resolution, num_rotations,
                                              mask.grasp_depth, grasp_floor=mask.grasp_floor)
    return push, grasp


class InvalidHeightmapError(ValueError):
    """A heightmap the policy cannot decide on; the message says why."""


@dataclass(frozen=True)
class Decision:
    """A chosen primitive, where and how, and the Q maps it came from."""

    primitive: int
    rotation_index: int
    num_rotations: int
    angle: float
    """Radians, rotation_index * 2 * pi / num_rotations (see rotations.py)."""
    row: int
    col: int
    position: tuple
    """(x, y, z) in the heightmap's base frame; z = table + local height at the pixel."""
    q_value: float
    exploratory: bool
    max_push_q: float
    """nan when pushing was not allowed."""
    max_grasp_q: float
    """nan when grasping was not allowed."""
    push_q: np.ndarray = None
    """(R, H, W) float32, or None."""
    grasp_q: np.ndarray = None

    @property
    def primitive_name(self):
        return PRIMITIVE_NAMES[self.primitive]


def allowed_primitives(allowed):
    """Tuple of primitive codes a ChoosePrimitive `allowed` value permits."""
    table = {ALLOW_BOTH: (PUSH, GRASP), PUSH_ONLY: (PUSH,), GRASP_ONLY: (GRASP,)}
    if allowed not in table:
        raise ValueError(f'allowed must be {ALLOW_BOTH} (both), {PUSH_ONLY} (push only) or '
                         f'{GRASP_ONLY} (grasp only), got {allowed}')
    return table[allowed]


def validate_heightmap(color, height, grid, multiple=1):
    """
    Raise InvalidHeightmapError unless colour, height and grid agree and can be used.

    multiple: the network's required divisor of the map size.
    """
    color = np.asarray(color)
    height = np.asarray(height)
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise InvalidHeightmapError(f'colour map must be (H, W, 3) uint8, got {color.shape} '
                                    f'{color.dtype}')
    if height.shape != color.shape[:2]:
        raise InvalidHeightmapError(f'height map {height.shape} and colour map '
                                    f'{color.shape[:2]} differ in size')
    if grid is not None and height.shape != grid.shape:
        raise InvalidHeightmapError(f'maps are {height.shape} but the workspace bounds and '
                                    f'resolution give {grid.shape}')
    if height.shape[0] % multiple or height.shape[1] % multiple:
        raise InvalidHeightmapError(f'map size {height.shape} must be a multiple of '
                                    f'{multiple} for this network')
    if not np.issubdtype(height.dtype, np.floating) or not np.isfinite(height).all():
        raise InvalidHeightmapError('height map must hold finite float values (metres)')


def _random_allowed(mask, shape, rng):
    """Draw (rotation, row, col) uniformly among those a (H, W) or (R, H, W) mask allows."""
    if mask.ndim == 2:
        cells = np.flatnonzero(mask)
        row, col = np.unravel_index(int(cells[rng.integers(cells.size)]), mask.shape)
        return int(rng.integers(shape[0])), int(row), int(col)
    cells = np.flatnonzero(mask)
    return tuple(int(i) for i in np.unravel_index(int(cells[rng.integers(cells.size)]),
                                                  mask.shape))


def centre_in_allowed(allowed, row, col, radius_px):
    """
    Find the allowed pixel near (row, col) deepest inside its region.

    Among the pixels of `allowed` (H, W) within radius_px of (row, col) and in its connected
    region: the one farthest from any pixel not allowed; ties go to the nearest to (row, col).
    (row, col) itself when it is not allowed or the radius is below one pixel.
    """
    if radius_px < 1 or not allowed[row, col]:
        return row, col
    cells = np.ascontiguousarray(allowed, dtype=np.uint8)
    distance = cv2.distanceTransform(cells, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    _, labels = cv2.connectedComponents(cells, connectivity=8)
    rows, cols = np.indices(allowed.shape)
    offset = np.hypot(rows - row, cols - col)
    candidate = (labels == labels[row, col]) & (offset <= radius_px)
    # Deepest first, then nearest: within a few tens of pixels distinct distances differ by
    # more than 0.03 px, the tie-break term stays below that.
    score = np.where(candidate, distance - 1e-3 * np.minimum(offset, 30.0), -np.inf)
    flat = int(np.argmax(score))
    return int(rows.flat[flat]), int(cols.flat[flat])


def _best(q, mask=None):
    """(max, (rotation, row, col)) of a Q map stack (R, H, W), over mask (H, W) or (R, H, W)."""
    if mask is not None:
        q = np.where(mask if mask.ndim == 3 else mask[None], q, -np.inf)
    flat = int(np.argmax(q))
    index = np.unravel_index(flat, q.shape)
    return float(q.flat[flat]), tuple(int(i) for i in index)


def choose_action(push_q, grasp_q, height, grid, epsilon=0.0, allowed=ALLOW_BOTH, rng=None,
                  exploration=Exploration.RANDOM_PRIMITIVE, min_object_height=0.01,
                  mask=ActionMask(enabled=False), explore_grasp_fraction=0.5,
                  grasp_centring=0.0):
    """
    Pick the action from push and grasp Q maps (R, H, W) of one heightmap.

    height: (H, W) metres, for the local height of the chosen pixel; grid: the
    vpg_perception HeightmapGrid for pixel -> point. rng: numpy Generator for the
    exploration draws (a fresh unseeded one when None). mask: ActionMask for the greedy
    choices and for random_action's draws. explore_grasp_fraction: probability that an
    exploratory draw picks a grasp when both primitives are allowed (VPG: 0.5; Good Robot
    explores with grasps 4 times in 5). grasp_centring: metres (see the module docstring);
    moves a grasp chosen by Q (not a random_action draw) inside the mask's allowed region.
    """
    primitives = allowed_primitives(allowed)
    if not 0.0 <= explore_grasp_fraction <= 1.0:
        raise ValueError(f'explore_grasp_fraction must lie in [0, 1], got '
                         f'{explore_grasp_fraction}')
    if not 0.0 <= epsilon <= 1.0 or math.isnan(epsilon):
        raise ValueError(f'epsilon must lie in [0, 1], got {epsilon}')
    exploration = Exploration(exploration)
    rng = rng if rng is not None else np.random.default_rng()
    maps = {PUSH: push_q, GRASP: grasp_q}
    for primitive in primitives:
        if not np.isfinite(maps[primitive]).all():
            raise ValueError(f'{PRIMITIVE_NAMES[primitive]} Q maps hold NaN or infinite '
                             'values (diverged weights?)')
    num_rotations = maps[primitives[0]].shape[0]
    masks = dict(zip((PUSH, GRASP),
                     action_masks(height, grid.resolution, mask, num_rotations)))
    if not masks[GRASP].any():
        # Grasp clearance left no grasp: push only, unless pushing is not allowed (then the
        # grasp goes where it makes most sense, as without the clearance mask).
        if PUSH in primitives:
            primitives = (PUSH,)
        else:
            plain = replace(mask, grasp_clearance=False)
            masks[GRASP] = action_masks(height, grid.resolution, plain)[1]
    best = {p: _best(maps[p], masks[p]) for p in primitives}
    max_push = best[PUSH][0] if PUSH in best else math.nan
    max_grasp = best[GRASP][0] if GRASP in best else math.nan

    # VPG: grasp unless pushing is strictly better.
    primitive = PUSH if PUSH in best and (GRASP not in best or max_push > max_grasp) else GRASP
    exploratory = epsilon > 0.0 and rng.random() < epsilon
    if exploratory:
        if len(primitives) == 1:
            primitive = primitives[0]
        else:
            primitive = GRASP if rng.random() < explore_grasp_fraction else PUSH
    rotation, row, col = best[primitive][1]
    drawn = exploratory and exploration is Exploration.RANDOM_ACTION
    if primitive == GRASP and grasp_centring > 0 and mask.enabled and not drawn:
        allowed_grasp = masks[GRASP][rotation] if masks[GRASP].ndim == 3 else masks[GRASP]
        row, col = centre_in_allowed(allowed_grasp, row, col,
                                     grasp_centring / grid.resolution)
    if drawn and mask.enabled:
        rotation, row, col = _random_allowed(masks[primitive], maps[primitive].shape, rng)
    elif drawn:
        num_rotations = maps[primitive].shape[0]
        rotation = int(rng.integers(num_rotations))
        rows, cols = np.nonzero(height > min_object_height)
        if rows.size:
            pick = int(rng.integers(rows.size))
            row, col = int(rows[pick]), int(cols[pick])
        else:
            row, col = int(rng.integers(height.shape[0])), int(rng.integers(height.shape[1]))

    num_rotations = maps[primitive].shape[0]
    position = grid.pixel_to_point(row, col, float(height[row, col]))
    return Decision(
        primitive=primitive, rotation_index=rotation, num_rotations=num_rotations,
        angle=rotation_angle(rotation, num_rotations), row=row, col=col,
        position=tuple(float(v) for v in position),
        q_value=float(maps[primitive][rotation, row, col]), exploratory=bool(exploratory),
        max_push_q=max_push, max_grasp_q=max_grasp, push_q=push_q, grasp_q=grasp_q)


class Policy:
    """
    A Q-network on its device that turns heightmaps into Decisions.

    Not thread-safe by itself: the node serialises calls and swaps networks between them.
    """

    def __init__(self, model, exploration=Exploration.RANDOM_PRIMITIVE, min_object_height=0.01,
                 mask=ActionMask(enabled=False), explore_grasp_fraction=0.5,
                 grasp_centring=0.0):
        self.model = model.eval()
        self.exploration = Exploration(exploration)
        self.min_object_height = float(min_object_height)
        self.mask = mask
        self.explore_grasp_fraction = float(explore_grasp_fraction)
        self.grasp_centring = float(grasp_centring)

    def q_maps(self, color, height):
        """Push and grasp Q maps of one heightmap, float32 numpy (R, H, W)."""
        with torch.inference_mode():
            maps = self.model(self.model.preprocess(color, height))
            push, grasp = maps.push[0], maps.grasp[0]
            if push.device.type != 'cpu':
                push, grasp = push.cpu(), grasp.cpu()
            return push.float().numpy(), grasp.float().numpy()

    def decide(self, color, height, grid, epsilon=0.0, allowed=ALLOW_BOTH, rng=None):
        """
        Validate the heightmap, run the network, choose the action.

        Raises InvalidHeightmapError for unusable maps and ValueError for bad arguments or
        non-finite Q values.
        """
        validate_heightmap(color, height, grid, self.model.input_multiple)
        allowed_primitives(allowed)
        push_q, grasp_q = self.q_maps(color, height)
        return choose_action(push_q, grasp_q, np.asarray(height), grid, epsilon, allowed, rng,
                             self.exploration, self.min_object_height, self.mask,
                             self.explore_grasp_fraction, self.grasp_centring)
