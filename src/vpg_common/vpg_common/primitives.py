"""Primitive and restriction codes, as vpg_interfaces' PrimitiveAction and ChoosePrimitive say."""

PUSH = 0
"""PrimitiveAction.PUSH."""
GRASP = 1
"""PrimitiveAction.GRASP."""
PRIMITIVE_NAMES = {PUSH: 'push', GRASP: 'grasp'}

ALLOW_BOTH = 0
"""ChoosePrimitive restriction: push or grasp."""
PUSH_ONLY = 1
GRASP_ONLY = 2
