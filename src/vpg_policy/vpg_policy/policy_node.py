"""
The policy node: serves push/grasp decisions and swaps in new Q-network weights live.

Service ``choose_primitive`` (vpg_interfaces/srv/ChoosePrimitive): heightmap in, chosen
primitive, pixel, rotation, base-frame point and Q value out. Per decision it publishes
``q_heatmaps/push`` and ``q_heatmaps/grasp`` (sensor_msgs/Image rgb8: each primitive's best
rotation over the colour map, action marked) and ``action_markers``
(visualization_msgs/MarkerArray in the heightmap's frame). It subscribes to
``model_updates`` (vpg_interfaces/msg/ModelUpdate): new weights are verified (sha256,
variant, architecture, tensor shapes), loaded into a second network off the request path and
swapped in between requests; anything wrong is logged and the old weights keep serving.
Versions never go backwards.
"""

from dataclasses import dataclass
import threading
import time
from urllib.parse import unquote, urlparse

from geometry_msgs.msg import Point
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterType
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
import torch
from visualization_msgs.msg import Marker, MarkerArray
from vpg_common.node_runner import run_node
from vpg_common.parameters import declare
from vpg_common.qos import MODEL_UPDATES_QOS
from vpg_interfaces.msg import ModelUpdate
from vpg_interfaces.srv import ChoosePrimitive
from vpg_perception.conversions import heightmap_from_msg, numpy_to_image

from vpg_policy.action_mask_parameters import action_mask_from, ACTION_MASK_PARAMETERS
from vpg_policy.decision import Exploration, InvalidHeightmapError, Policy, PUSH
from vpg_policy.q_network import build_q_network, parameter_count, variant_class, variants
from vpg_policy.visualization import decision_images, grasp_jaw_segments, push_arrow_points
from vpg_policy.weights import (build_from_weights, check_compatible, read_weights,
                                WeightsError)


@dataclass(frozen=True)
class PolicyParams:
    """The node's parameters (declared in declare_parameters)."""

    weights_path: str
    device: str
    num_rotations: int
    seed: int
    variant: str
    publish_heatmaps: bool
    exploration: str
    exploration_min_height: float
    exploration_grasp_fraction: float
    grasp_centring: float
    action_mask: bool
    action_mask_min_height: float
    action_mask_push_margin: float
    action_mask_grasp_margin: float
    action_mask_grasp_clearance: bool
    action_mask_grasp_depth: float
    action_mask_grasp_floor: float
    action_mask_grasp_inset: float
    push_length: float
    grasp_width: float
    torch_threads: int


def _spec(description, type_, **ranges):
    return description, dict(type=type_, **ranges)


def declare_parameters(node):
    """Declare every parameter with type, default and description; return PolicyParams."""
    string, integer, double, boolean = (ParameterType.PARAMETER_STRING,
                                        ParameterType.PARAMETER_INTEGER,
                                        ParameterType.PARAMETER_DOUBLE,
                                        ParameterType.PARAMETER_BOOL)
    specs = [
        ('weights_path', '', _spec(
            'safetensors weights to serve at start; empty = random initialisation (for tests '
            'and the first training steps only)', string)),
        ('device', 'auto', _spec(
            "'auto' (cuda when available, else cpu), 'cpu' or 'cuda'", string)),
        ('num_rotations', 16, _spec(
            'directions per primitive (rotation i = i * 2 pi / num_rotations); must match the '
            'weights', integer, integer_range=[IntegerRange(from_value=1, to_value=64, step=1)])),
        ('seed', 0, _spec(
            'seed of the random initial weights and of the exploration draws', integer)),
        ('variant', 'vpg', _spec(
            f'Q-network variant; must match the weights (known: {", ".join(variants())})',
            string)),
        ('publish_heatmaps', True, _spec(
            'publish q_heatmaps/push, q_heatmaps/grasp and action_markers per decision',
            boolean)),
        ('exploration', Exploration.RANDOM_PRIMITIVE.value, _spec(
            "what an epsilon draw randomises: 'random_primitive' (VPG: random primitive at its "
            "best pixel) or 'random_action' (random primitive, rotation and pixel among those the "
            'action mask allows; an object pixel when the mask is off)',
            string)),
        ('exploration_grasp_fraction', 0.5, _spec(
            'probability that an epsilon draw picks a grasp when both primitives are allowed '
            '(VPG: 0.5; Good Robot: 0.8, so that early training gathers grasps, not only pushes)',
            double, floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)])),
        ('grasp_centring', 0.0, _spec(
            "metres; move a grasp chosen by Q to the pixel deepest inside the action mask's "
            'allowed region within this radius of the argmax (same rotation and region): the '
            "network scores 16 mm cells, so its argmax often sits on the region's edge; "
            '0 = off, needs action_mask', double,
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=0.1)])),
        ('exploration_min_height', 0.01, _spec(
            "metres; pixels higher than this count as objects for 'random_action' with the "
            'action mask off', double,
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)])),
        ('push_length', 0.1, _spec(
            'metres; push length drawn in heatmaps and markers (the executor owns the real one)',
            double, floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)])),
        ('grasp_width', 0.085, _spec(
            'metres; gripper opening drawn in heatmaps and markers', double,
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0)])),
        ('torch_threads', 0, _spec(
            "CPU threads for inference; 0 leaves torch's default", integer,
            integer_range=[IntegerRange(from_value=0, to_value=256, step=1)])),
    ]
    table = [(name, default, *spec) for name, default, spec in specs]
    values = declare(node, table + list(ACTION_MASK_PARAMETERS), read_only=False)
    params = PolicyParams(**values)
    if params.device not in ('auto', 'cpu', 'cuda'):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {params.device!r}")
    if params.variant not in variants():
        raise ValueError(f'unknown variant {params.variant!r} (known: {variants()})')
    Exploration(params.exploration)
    return params


def action_mask_of(params):
    """Build the ActionMask the parameters describe."""
    return action_mask_from(vars(params))


def resolve_device(choice):
    """'auto' -> 'cuda' when available, else 'cpu'; a forced 'cuda' must be available."""
    if choice == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if choice == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return choice


def read_update_bytes(msg):
    """Return the weights bytes an update carries inline or points to (path or file:// URI)."""
    if len(msg.data):
        return bytes(msg.data)
    if not msg.uri:
        raise WeightsError('update carries neither inline data nor a uri')
    parsed = urlparse(msg.uri)
    if parsed.scheme == 'file':
        path = unquote(parsed.path)
    elif parsed.scheme == '' and msg.uri.startswith('/'):
        path = msg.uri
    else:
        raise WeightsError(f'unsupported weights uri {msg.uri!r} (absolute path or file:// only)')
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError as exc:
        raise WeightsError(f'cannot read weights file {path}: {exc.strerror}') from None


class PolicyNode(Node):
    """Thin ROS wrapper over decision.Policy; see the module docstring."""

    def __init__(self, **node_kwargs):
        super().__init__('policy', **node_kwargs)
        self._params = declare_parameters(self)
        if self._params.torch_threads:
            torch.set_num_threads(self._params.torch_threads)
        self._device = resolve_device(self._params.device)
        self._rng = np.random.default_rng(self._params.seed)
        model, self._version = self._initial_model()
        self._policy = self._make_policy(model)
        self._lock = threading.Lock()  # held while a decision runs; the swap takes it

        self._decide_group = MutuallyExclusiveCallbackGroup()
        self._update_group = MutuallyExclusiveCallbackGroup()
        self._service = self.create_service(ChoosePrimitive, 'choose_primitive', self._on_choose,
                                            callback_group=self._decide_group)
        self._push_pub = self.create_publisher(Image, 'q_heatmaps/push', 1)
        self._grasp_pub = self.create_publisher(Image, 'q_heatmaps/grasp', 1)
        self._marker_pub = self.create_publisher(MarkerArray, 'action_markers', 1)
        self._update_sub = self.create_subscription(ModelUpdate, 'model_updates',
                                                    self._on_model_update, MODEL_UPDATES_QOS,
                                                    callback_group=self._update_group)
        self.get_logger().info(
            f'serving {model.variant!r} Q-network ({parameter_count(model)} parameters, '
            f'{model.num_rotations} rotations) on {self._device}, weights version '
            f'{self._version}')

    @property
    def weights_version(self):
        return self._version

    def _make_policy(self, model):
        """Wrap a network in a Policy with this node's exploration, mask and centring."""
        p = self._params
        return Policy(model, p.exploration, p.exploration_min_height, action_mask_of(p),
                      p.exploration_grasp_fraction, p.grasp_centring)

    def _initial_model(self):
        p = self._params
        if not p.weights_path:
            self.get_logger().warning(
                'NO WEIGHTS: weights_path is empty, serving a RANDOMLY INITIALISED Q-network '
                f'(seed {p.seed}); its actions are meaningless until a ModelUpdate arrives')
            config = variant_class(p.variant).config_class(num_rotations=p.num_rotations)
            model = build_q_network(p.variant, config, seed=p.seed)
            return model.to(self._device).eval(), 0
        loaded = read_weights(p.weights_path)
        meta = loaded.metadata
        if meta.variant != p.variant:
            raise WeightsError(f'{p.weights_path} holds variant {meta.variant!r} but the '
                               f'variant parameter is {p.variant!r}')
        if meta.config.num_rotations != p.num_rotations:
            raise WeightsError(f'{p.weights_path} has {meta.config.num_rotations} rotations but '
                               f'num_rotations is {p.num_rotations}')
        model = build_from_weights(loaded, self._device)
        self.get_logger().info(f'loaded weights version {meta.version} from {p.weights_path} '
                               f'(sha256 {loaded.sha256[:12]})')
        return model, meta.version

    # -- decisions ----------------------------------------------------------------------

    def _on_choose(self, request, response):
        start = time.monotonic()
        try:
            color, height, grid = heightmap_from_msg(request.heightmap)
        except ValueError as exc:
            return self._fail(response, f'invalid heightmap: {exc}')
        seed = int(request.seed)
        rng = np.random.default_rng(seed) if seed else self._rng
        try:
            with self._lock:
                policy, version = self._policy, self._version
                decision = policy.decide(color, height, grid, float(request.epsilon),
                                         int(request.allowed), rng)
        except InvalidHeightmapError as exc:
            return self._fail(response, f'invalid heightmap: {exc}')
        except (ValueError, RuntimeError) as exc:  # bad arguments, non-finite Q, device errors
            return self._fail(response, str(exc))

        header = request.heightmap.header
        action = response.action
        action.header.stamp = self.get_clock().now().to_msg()
        action.header.frame_id = header.frame_id
        action.primitive = decision.primitive
        action.rotation_index = decision.rotation_index
        action.num_rotations = decision.num_rotations
        action.angle = decision.angle
        action.row, action.col = decision.row, decision.col
        action.position.x, action.position.y, action.position.z = decision.position
        action.q_value = decision.q_value
        action.exploratory = decision.exploratory
        action.weights_version = version
        response.max_push_q = decision.max_push_q
        response.max_grasp_q = decision.max_grasp_q
        response.success = True
        response.message = (f'{decision.primitive_name} at ({decision.row}, {decision.col}) '
                            f'rotation {decision.rotation_index}, Q {decision.q_value:.3f}'
                            f'{" (exploring)" if decision.exploratory else ""}, weights v'
                            f'{version}, {1000 * (time.monotonic() - start):.0f} ms')
        if self._params.publish_heatmaps:
            self._publish_visuals(color, grid, header, decision)
        return response

    def _fail(self, response, message):
        self.get_logger().warning(f'choose_primitive: {message}', throttle_duration_sec=5.0)
        response.success = False
        response.message = message
        return response

    def _publish_visuals(self, color, grid, header, decision):
        push_image, grasp_image = decision_images(
            color, decision, grid.resolution, self._params.push_length, self._params.grasp_width)
        self._push_pub.publish(numpy_to_image(push_image, 'rgb8', header))
        self._grasp_pub.publish(numpy_to_image(grasp_image, 'rgb8', header))
        self._marker_pub.publish(self._markers(header, decision))

    def _markers(self, header, decision):
        clear = Marker(header=header, action=Marker.DELETEALL)
        marker = Marker(header=header, ns='policy_action', id=0, action=Marker.ADD)
        marker.pose.orientation.w = 1.0
        marker.color.a = 1.0
        if decision.primitive == PUSH:
            marker.type = Marker.ARROW
            start, end = push_arrow_points(decision.position, decision.angle,
                                           self._params.push_length)
            marker.points = [_point(start), _point(end)]
            marker.scale.x, marker.scale.y, marker.scale.z = 0.008, 0.016, 0.02
            marker.color.r, marker.color.g, marker.color.b = 1.0, 0.5, 0.0
        else:
            marker.type = Marker.LINE_LIST
            segments = grasp_jaw_segments(decision.position, decision.angle,
                                          self._params.grasp_width)
            marker.points = [_point(p) for segment in segments for p in segment]
            marker.scale.x = 0.005
            marker.color.r, marker.color.g, marker.color.b = 0.0, 0.8, 0.2
        return MarkerArray(markers=[clear, marker])

    # -- weight updates -----------------------------------------------------------------

    def _on_model_update(self, msg):
        log = self.get_logger()
        current = self._version
        if msg.version <= current:
            log.warning(f'ignoring model update version {msg.version}: serving version '
                        f'{current} already (versions never go backwards)')
            return
        try:
            if not msg.sha256:
                raise WeightsError('update has no sha256 to verify the weights against')
            data = read_update_bytes(msg)
            loaded = read_weights(data, expected_sha256=msg.sha256)
            meta = loaded.metadata
            if msg.variant and msg.variant != meta.variant:
                raise WeightsError(f'update says variant {msg.variant!r}, the weights are '
                                   f'{meta.variant!r}')
            if meta.version != msg.version:
                raise WeightsError(f'update says version {msg.version}, the weights record '
                                   f'{meta.version}')
            check_compatible(loaded, self._policy.model)
            model = build_from_weights(loaded, self._device)
        except (WeightsError, OSError, RuntimeError, ValueError) as exc:
            log.error(f'rejected model update version {msg.version} '
                      f'({msg.uri or f"{len(msg.data)} inline bytes"}): {exc}; still serving '
                      f'version {current}')
            return
        with self._lock:
            if msg.version <= self._version:  # a newer one got in first
                log.warning(f'ignoring model update version {msg.version}: version '
                            f'{self._version} arrived first')
                return
            self._policy = self._make_policy(model)
            self._version = msg.version
        log.info(f'now serving weights version {msg.version} (sha256 {loaded.sha256[:12]})')


def _point(xyz):
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def main(args=None):
    return run_node(PolicyNode, 'policy', threads=3, args=args,
                    startup_errors=(WeightsError, OSError, RuntimeError, ValueError))


if __name__ == '__main__':
    raise SystemExit(main())
