"""
Drive `/pick_all` from another process: reset the sim scene, run one goal, log the episode.

Scripts that run many episodes through the node graph (evaluation, the training driver) share
this client. It works on an rclpy node that the caller spins in a background thread, and it
only waits on futures, so it never spins the node itself. Every wait has a timeout and, when a
vpg_bringup.runner.GraphRunner is given, calls its check() while waiting, so a node of the
graph that died raises NodeDied at once instead of letting the caller wait for the timeout.

    client = PickAllClient(node, runner)
    client.wait_ready(120.0)
    client.reset_scene(num_objects=10, seed=3)
    log = client.run(PickAll.Goal(max_actions=25, max_consecutive_failures=10), timeout=900.0)
    json.dumps(log.to_dict())
"""

from dataclasses import asdict, dataclass, field, fields
import threading
import time

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from vpg_interfaces.action import PickAll
from vpg_interfaces.srv import CountObjects, ResetScene

_POLL = 0.05  # s between checks while waiting on a future
_FEEDBACK_GRACE = 2.0  # s to wait for feedback still in flight when the result has arrived


class PickAllClientError(RuntimeError):
    """A request was refused or failed (goal rejected, scene not reset, ...)."""


@dataclass(frozen=True)
class StepRecord:
    """One executed primitive, copied from a PickAll feedback message."""

    step: int
    primitive: int
    """0 = push, 1 = grasp (vpg_interfaces/PrimitiveAction)."""
    rotation_index: int
    row: int
    col: int
    reward: float
    grasp_success: bool
    push_changed: bool
    objects_seen_remaining: int
    consecutive_failures: int
    weights_version: int
    epsilon: float = 0.0
    """Exploration probability the executor's decision used."""

    @classmethod
    def from_feedback(cls, feedback):
        return cls(step=int(feedback.step), primitive=int(feedback.action.primitive),
                   rotation_index=int(feedback.action.rotation_index),
                   row=int(feedback.action.row), col=int(feedback.action.col),
                   reward=float(feedback.reward), grasp_success=bool(feedback.grasp_success),
                   push_changed=bool(feedback.push_changed),
                   objects_seen_remaining=int(feedback.objects_seen_remaining),
                   consecutive_failures=int(feedback.consecutive_failures),
                   weights_version=int(feedback.weights_version),
                   epsilon=round(float(feedback.epsilon), 6))


@dataclass
class EpisodeLog:
    """
    One /pick_all goal: its per-action records, its result and ground-truth object counts.

    Plain values only, so `to_dict()` is JSON-serialisable and `from_dict` reads it back.
    The object counts come from the sim's count_objects before and after the goal (None when
    not counted); `removed` and `out_of_workspace` are the counts after the goal, and
    `removed` includes blocks removed since the last scene reset.
    """

    steps: list = field(default_factory=list)
    objects_removed: int = 0
    actions: int = 0
    grasp_attempts: int = 0
    grasp_successes: int = 0
    push_attempts: int = 0
    table_cleared: bool = False
    reason_code: int = 0
    reason: str = ''
    status: int = GoalStatus.STATUS_UNKNOWN
    """Final action status (action_msgs/GoalStatus: 4 succeeded, 5 canceled, 6 aborted)."""
    objects_in_workspace_before: int = None
    removed_before: int = None
    out_of_workspace_before: int = None
    objects_in_workspace_after: int = None
    removed: int = None
    out_of_workspace: int = None
    feedback_complete: bool = True
    """False when fewer feedback messages arrived than the result counts actions."""
    wall_s: float = 0.0
    goal: dict = field(default_factory=dict)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values['steps'] = [s if isinstance(s, StepRecord) else StepRecord(**s)
                           for s in data.get('steps', ())]
        return cls(**values)


def goal_to_dict(goal):
    return {'max_actions': int(goal.max_actions),
            'max_consecutive_failures': int(goal.max_consecutive_failures),
            'explore': bool(goal.explore), 'epsilon': float(goal.epsilon),
            'allowed': int(goal.allowed)}


def _name(namespace, name):
    """Absolute name inside `namespace`, or the relative name at the root."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else name


class _ActionClient(ActionClient):
    """
    rclpy's ActionClient, with its lock made before it registers with the node.

    rclpy (9.x) adds the client to the node's waitables before it creates the lock that
    get_num_entities() takes, so a node already spinning in another thread can fail there
    ("'ActionClient' object has no attribute '_lock'") and its spinning thread dies; seen
    once in an evaluation, where the cell then never answered reset_scene.
    """

    def __init__(self, *args, **kwargs):
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)


class PickAllClient:
    """
    Client of one cell's pick_all action and its sim services (see the module docstring).

    node: an rclpy node spun by the caller in another thread. runner: optional GraphRunner
    checked while waiting. namespace: the cell's namespace ('' = root), as in
    vpg_bringup.graph.sim_graph(cell=...).
    """

    def __init__(self, node, runner=None, namespace=''):
        self.node = node
        self.runner = runner
        self.namespace = namespace
        self.action_name = _name(namespace, 'pick_all')
        self._action = _ActionClient(node, PickAll, self.action_name)
        self._reset = node.create_client(ResetScene, _name(namespace, 'sim/reset_scene'))
        self._count = node.create_client(CountObjects, _name(namespace, 'sim/count_objects'))
        self._lock = threading.Lock()
        self.active_handle = None
        """Goal handle of the goal run() is waiting on (None between goals), for cancel()."""

    # -- waiting --------------------------------------------------------------------------

    def _check(self):
        if self.runner is not None:
            self.runner.check()

    def _wait_until(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            self._check()
            if time.monotonic() > deadline:
                raise TimeoutError(f'{what}: no answer within {timeout:.1f} s')
            time.sleep(_POLL)

    def _wait(self, future, timeout, what):
        self._wait_until(future.done, timeout, what)
        error = future.exception()
        if error is not None:
            raise PickAllClientError(f'{what} failed: {error}') from error
        return future.result()

    def wait_ready(self, timeout, sim=True):
        """
        Wait until the pick_all server (and, with sim, the sim's services) can be reached.

        Raises TimeoutError naming what is missing, or NodeDied from the runner.
        """
        def missing():
            names = [] if self._action.server_is_ready() else [self.action_name]
            if sim:
                names += [c.srv_name for c in (self._reset, self._count)
                          if not c.service_is_ready()]
            return names
        try:
            self._wait_until(lambda: not missing(), timeout, 'waiting for the cell')
        except TimeoutError:
            raise TimeoutError(f'not available after {timeout:.1f} s: '
                               f'{", ".join(missing())}') from None

    # -- sim services -----------------------------------------------------------------------

    def reset_scene(self, num_objects=10, seed=0, test_case_file='', timeout=60.0):
        """
        Replace the blocks (random ones, or a test case file) and wait until they settled.

        Returns the ResetScene response; raises PickAllClientError when the sim refused.
        """
        request = ResetScene.Request(num_objects=int(num_objects), seed=int(seed),
                                     test_case_file=str(test_case_file))
        response = self._wait(self._reset.call_async(request), timeout, 'reset_scene')
        if not response.success:
            raise PickAllClientError(f'reset_scene failed: {response.message}')
        return response

    def count_objects(self, timeout=10.0):
        """Ground truth from the sim: CountObjects response (in_workspace, removed, ...)."""
        return self._wait(self._count.call_async(CountObjects.Request()), timeout,
                          'count_objects')

    # -- the action -------------------------------------------------------------------------

    def send_goal(self, goal, on_feedback=None, timeout=30.0):
        """
        Send a goal and wait until it is accepted; returns the ClientGoalHandle.

        on_feedback(PickAll.Feedback) runs in the spinning thread. Raises PickAllClientError
        when the goal is rejected.
        """
        callback = None if on_feedback is None else (lambda msg: on_feedback(msg.feedback))
        handle = self._wait(self._action.send_goal_async(goal, feedback_callback=callback),
                            timeout, 'sending the pick_all goal')
        if not handle.accepted:
            raise PickAllClientError('pick_all goal rejected (invalid, or another goal is '
                                     'running; see the executor log)')
        return handle

    def cancel(self, handle, timeout=30.0):
        """Ask the server to cancel a goal; True when it accepted to cancel it."""
        response = self._wait(handle.cancel_goal_async(), timeout, 'cancelling pick_all')
        return len(response.goals_canceling) > 0

    def run(self, goal, timeout, on_feedback=None, count_objects=True):
        """
        Run one goal to its end and return its EpisodeLog.

        timeout: seconds for the whole goal; on a timeout (or any error while waiting) the
        goal is cancelled before the exception propagates, so the next goal is not refused.
        on_feedback(StepRecord) runs in the spinning thread for each action.
        count_objects: read the sim's ground truth before and after (False on hardware).
        """
        log = EpisodeLog(goal=goal_to_dict(goal))
        if count_objects:
            before = self.count_objects()
            log.objects_in_workspace_before = int(before.in_workspace)
            log.removed_before = int(before.removed)
            log.out_of_workspace_before = int(before.out_of_workspace)
        steps = []

        def record(feedback):
            step = StepRecord.from_feedback(feedback)
            with self._lock:
                steps.append(step)
            if on_feedback is not None:
                on_feedback(step)

        start = time.monotonic()
        handle = self.send_goal(goal, record)
        self.active_handle = handle
        try:
            outcome = self._wait(handle.get_result_async(), timeout, 'pick_all')
        except BaseException:
            self._cancel_quietly(handle)
            raise
        finally:
            self.active_handle = None
        log.wall_s = time.monotonic() - start
        result = outcome.result
        log.status = int(outcome.status)
        for name in ('objects_removed', 'actions', 'grasp_attempts', 'grasp_successes',
                     'push_attempts', 'reason_code'):
            setattr(log, name, int(getattr(result, name)))
        log.table_cleared = bool(result.table_cleared)
        log.reason = str(result.reason)
        # Feedback and result travel on different channels: the last feedback may still be on
        # its way when the result is in.
        deadline = time.monotonic() + _FEEDBACK_GRACE
        while time.monotonic() < deadline:
            with self._lock:
                if len(steps) >= log.actions:
                    break
            time.sleep(_POLL)
        with self._lock:
            log.steps = sorted(steps, key=lambda s: s.step)
        log.feedback_complete = len(log.steps) == log.actions
        if count_objects:
            after = self.count_objects()
            log.objects_in_workspace_after = int(after.in_workspace)
            log.removed = int(after.removed)
            log.out_of_workspace = int(after.out_of_workspace)
        return log

    def _cancel_quietly(self, handle):
        try:
            self.cancel(handle, timeout=5.0)
        except Exception as error:  # already failing: report, do not mask the first error
            self.node.get_logger().warning(f'could not cancel the pick_all goal: {error}')
