"""
Node parameters declared from one table: name, default, description and constraints.

In the spirit of generate_parameter_library (not installable here): each node keeps its
parameters in one table, `declare(node, table)` declares them all with their descriptions and
ranges (visible with `ros2 param describe`, enforced by rclpy on every set) and returns the
values; the node turns them into its frozen config and checks what ranges cannot say.

A table entry is (name, default, description) or (name, default, description, constraints),
constraints being float_range(...), int_range(...), one_of(...) or ParameterDescriptor
keywords (e.g. type= for an empty list's element type).
"""

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def float_range(low, high):
    """Constraint: a float in [low, high]."""
    return {'floating_point_range': [FloatingPointRange(from_value=float(low),
                                                        to_value=float(high), step=0.0)]}


def int_range(low, high):
    """Constraint: an integer in [low, high]."""
    return {'integer_range': [IntegerRange(from_value=int(low), to_value=int(high), step=1)]}


def one_of(*choices):
    """Constraint shown to users: one of these strings (the node checks it, see check_choice)."""
    return {'additional_constraints': ' or '.join(repr(choice) for choice in choices)}


def check_choice(name, value, choices):
    """Raise ValueError naming the parameter and its choices when value is not one of them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, "
                         f'got {value!r}')
    return value


def entry_parts(entry):
    """(name, default, description, constraints dict) of a table entry."""
    if len(entry) == 3:
        name, default, description = entry
        return name, default, description, {}
    name, default, description, constraints = entry
    return name, default, description, dict(constraints or {})


def unranged(table):
    """Names of the table's numeric entries (not bools) that declare no range."""
    return [name for name, default, _, constraints in map(entry_parts, table)
            if isinstance(default, (int, float)) and not isinstance(default, bool)
            and not {'floating_point_range', 'integer_range'} & set(constraints)]


def defaults(table):
    """Name -> default of every entry."""
    return {entry[0]: entry[1] for entry in table}


def declare(node, table, read_only=True):
    """Declare every entry of table on node; return name -> value (overrides applied)."""
    values = {}
    for entry in table:
        name, default, description, constraints = entry_parts(entry)
        descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                         **constraints)
        values[name] = node.declare_parameter(name, default, descriptor).value
    return values


def parse_value(text):
    """Read NAME=VALUE values as YAML would: numbers, booleans, else strings."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ('true', 'false'):
        return text.lower() == 'true'
    return text


def named_values(items):
    """Parse NAME=VALUE strings into {name: value}; ValueError for an item without '='."""
    values = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name:
            raise ValueError(f'expected NAME=VALUE, got {item!r}')
        values[name] = parse_value(value)
    return values
