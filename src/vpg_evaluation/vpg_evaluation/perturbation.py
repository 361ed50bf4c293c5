"""
Seeded perturbation of a test case: the runs of one case differ as VPG's did.

A case places its blocks exactly, so without a perturbation its runs differ only by timing.
VPG's runs of a case differed through its simulator's noise; here each run moves every block
by up to ±2 mm in x and y and turns it by up to ±2° about the vertical, drawn from the run's
seed, so every policy meets the same perturbed scene in its run k (a paired comparison). Blocks
that would start inside each other (deeper than 0.5 mm, checked on the cell's own model) get a
new draw. No ROS.
"""

import math
from pathlib import Path

import mujoco
import numpy as np
from vpg_sim import blocks, scene

MAX_SHIFT = 0.002          # m, in x and in y
MAX_TURN = math.radians(2.0)
MAX_PENETRATION = 0.0005   # m


def _turn_about_z(quat, angle):
    half = angle / 2
    turn = (math.cos(half), 0.0, 0.0, math.sin(half))
    w1, x1, y1, z1 = turn
    w2, x2, y2, z2 = quat
    return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)


def perturb_objects(objects, rng, max_shift=MAX_SHIFT, max_turn=MAX_TURN):
    """Each block moved by U(-max_shift, max_shift) in x and y, turned U(-max_turn, max_turn)."""
    moved = []
    for obj in objects:
        dx, dy = rng.uniform(-max_shift, max_shift, 2)
        x, y, z = obj.position
        moved.append(blocks.ObjectSpec(obj.shape, obj.rgba, (x + dx, y + dy, z),
                                       _turn_about_z(obj.quat, rng.uniform(-max_turn, max_turn))))
    return moved


def deepest_penetration(objects):
    """Deepest block-block interpenetration (m, >= 0) of objects as placed, on the cell model."""
    model = scene.build_model(objects)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    block_bodies = {model.body(f'block{i}').id for i in range(len(objects))}
    deepest = 0.0
    for contact in data.contact[:data.ncon]:
        bodies = {int(model.geom_bodyid[g]) for g in contact.geom}
        if len(bodies & block_bodies) == 2:
            deepest = max(deepest, -float(contact.dist))
    return deepest


def perturbed_case(objects, seed, max_tries=50):
    """
    Perturb the case objects for run `seed` (deterministic), without interpenetration.

    Draws again (same generator) while blocks would start more than MAX_PENETRATION inside
    each other; after max_tries the case is returned unperturbed (raises nothing: a case
    whose blocks touch that tightly still runs, as placed).
    """
    rng = np.random.default_rng([seed, len(objects)])
    for _ in range(max_tries):
        moved = perturb_objects(objects, rng)
        if deepest_penetration(moved) <= MAX_PENETRATION:
            return moved
    return list(objects)


def write_perturbed_case(case_file, seed, out_dir):
    """Write case_file perturbed for run `seed` to out_dir/<stem>-run<seed>.txt; its Path."""
    case_file = Path(case_file)
    objects = blocks.load_test_case(case_file)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f'{case_file.stem}-run{seed}.txt'
    text = (f'# {case_file.name} perturbed for run {seed}: blocks moved up to '
            f'{1000 * MAX_SHIFT:.0f} mm and turned up to {math.degrees(MAX_TURN):.0f} deg '
            '(vpg_evaluation.perturbation)\n'
            + blocks.format_test_case(perturbed_case(objects, seed)))
    if not path.exists() or path.read_text(encoding='utf-8') != text:
        path.write_text(text, encoding='utf-8')
    return path
