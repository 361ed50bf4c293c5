"""
The action mask's parameters, one table for the two nodes that must agree on it.

The policy restricts its greedy choice to the masked pixels and the trainer takes the future
maximum over the same pixels; both declare these entries from this table (so name, default,
description and range exist once) and a graph that sets them sets them for both nodes (one
parameters file, or training_run passing a policy's action_mask* value to the trainer too).
"""

from vpg_common.parameters import float_range

from vpg_policy.decision import ActionMask

_M = ActionMask()
ACTION_MASK_PARAMETERS = (
    ('action_mask', _M.enabled,
     'restrict greedy actions (policy) and the future maximum (trainer) to where actions make '
     'sense: grasps on objects, pushes starting near them; false = plain argmax as VPG'),
    ('action_mask_min_height', _M.min_object_height,
     'metres; heightmap cells higher than this are objects for the action mask',
     float_range(0.0, 1.0)),
    ('action_mask_push_margin', _M.push_margin, 'metres around objects where a push may start',
     float_range(0.0, 0.5)),
    ('action_mask_grasp_margin', _M.grasp_margin,
     'metres around objects where a grasp may be centred', float_range(0.0, 0.5)),
    ('action_mask_grasp_clearance', _M.grasp_clearance,
     'also restrict grasps to rotations and pixels where the heightmap leaves room for both '
     'open 2F-85 pads to go down (vpg_policy.grasp_clearance); none left: push'),
    ('action_mask_grasp_depth', _M.grasp_depth,
     "metres below the surface a grasp sends the pinch point (the executor's "
     'primitives.grasp_depth), for the clearance mask', float_range(0.0, 0.2)),
    ('action_mask_grasp_inset', _M.grasp_inset,
     "metres a grasp must be centred inside an object's edge (0: off, action_mask_grasp_margin "
     'applies); an object thinner than twice this keeps its middle line',
     float_range(0.0, 0.1)),
    ('action_mask_grasp_floor', _M.grasp_floor,
     "metres above the table the pinch point never goes below (the executor's safety.z_min), "
     'for the clearance mask', float_range(0.0, 0.2)),
)
"""(name, default, description[, constraints]) entries for vpg_common.parameters.declare."""
ACTION_MASK_NAMES = tuple(entry[0] for entry in ACTION_MASK_PARAMETERS)


def action_mask_from(values):
    """Build the ActionMask from parameter values (name -> value; defaults where missing)."""
    v = {entry[0]: entry[1] for entry in ACTION_MASK_PARAMETERS}
    v.update({name: values[name] for name in ACTION_MASK_NAMES if name in values})
    return ActionMask(bool(v['action_mask']), float(v['action_mask_min_height']),
                      float(v['action_mask_grasp_margin']), float(v['action_mask_push_margin']),
                      bool(v['action_mask_grasp_clearance']),
                      float(v['action_mask_grasp_depth']), float(v['action_mask_grasp_floor']),
                      float(v['action_mask_grasp_inset']))
