"""
Launch the MuJoCo cell: sim, heightmap, policy and executor; optionally trainer, RViz, viewer.

Without the trainer the nodes are those of vpg_bringup.graph.sim_graph, which the plain-machine
runner (`python -m vpg_bringup.runner sim`) starts too. With `trainer:=true` they are those of
vpg_bringup.graph.training_graph (`make train`'s graph): `cells` cells, in /cell0, /cell1, ...
when there are several, feeding one trainer whose new weights reach every policy. Episodes are
driven by any /pick_all client, e.g. vpg_bringup.pick_all_client.

    ros2 launch vpg_bringup sim.launch.py seed:=3 weights:=/path/vpg.safetensors rviz:=true
    ros2 launch vpg_bringup sim.launch.py viewer:=true   # Foxglove: ws://localhost:8765
    ros2 launch vpg_bringup sim.launch.py trainer:=true cells:=4 run_dir:=$HOME/vpg_runs/sim
"""

import os

from launch import LaunchDescription
from launch.actions import OpaqueFunction
from vpg_bringup.graph import sim_graph, training_graph, viewer_spec
from vpg_bringup.launch_description import (argument_values, as_bool, as_int,
                                            declare_arguments, node_actions, rviz_actions)

ARGUMENTS = (
    ('cell', '', 'Namespace of the cell (cell0, cell1, ... when several run); empty = root'),
    ('seed', '0', 'Seed of the random scene and of depth noise'),
    ('num_objects', '10', 'Blocks dropped on the table at start'),
    ('weights', '', 'Policy weights (.safetensors); empty = random initialisation'),
    ('device', 'auto', "Policy device: 'auto' (cuda when available), 'cpu' or 'cuda'"),
    ('trainer', 'false', 'Run the training graph: `cells` cells and the trainer'),
    ('cells', '1', 'With trainer:=true: how many cells feed the trainer'),
    ('run_dir', os.path.expanduser(os.path.join('~', 'vpg_runs', 'sim')),
     'With trainer:=true: the training run folder (resumed when it exists)'),
    ('rviz', 'false', 'Start RViz with rviz/vpg.rviz'),
    ('viewer', 'false', 'Serve the (first) cell live to Foxglove or Lichtblick (Foxglove '
     'WebSocket protocol, no authentication, localhost only)'),
    ('viewer_port', '8765', 'With viewer:=true: TCP port of the WebSocket server'),
)


def graph(values):
    """Return the NodeSpecs for the launch argument values (strings)."""
    common = {'seed': as_int('seed', values['seed']),
              'num_objects': as_int('num_objects', values['num_objects']),
              'weights': values['weights'], 'device': values['device']}
    if not as_bool(values['trainer']):
        specs = sim_graph(cell=values['cell'], **common)
    elif values['cell']:
        raise ValueError('cell is for one cell without the trainer; with trainer:=true the '
                         'cells are named by the training graph (cells:=N)')
    else:
        specs = training_graph(values['run_dir'], cells=as_int('cells', values['cells']),
                               **common)
    if as_bool(values['viewer']):
        specs.append(viewer_spec(rviz_namespace(specs),
                                 port=as_int('viewer_port', values['viewer_port']),
                                 parameters={'use_sim_time': True}))
    return specs


def rviz_namespace(specs):
    """Show the first cell: the namespace of the first sim node."""
    return next(spec.namespace for spec in specs if spec.executable == 'sim')


def launch_setup(context):
    values = argument_values(context, ARGUMENTS)
    specs = graph(values)
    return node_actions(specs) + rviz_actions(values['rviz'], use_sim_time=True,
                                              namespace=rviz_namespace(specs))


def generate_launch_description():
    return LaunchDescription(declare_arguments(ARGUMENTS)
                             + [OpaqueFunction(function=launch_setup)])
