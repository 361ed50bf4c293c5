"""
The pick-all loop: perceive, choose, act, reward, report, until the table is clear or a limit.

ROS-free: perception, the policy, the robot and the outputs are callables and objects handed
in, so the same loop runs against the MuJoCo cell, a real cell or fakes in tests. Reason codes
equal the constants of vpg_interfaces/action/PickAll.

Stop rules (VPG's testing loop): the table counts as clear by the heightmap (`table_empty`);
every action either changed the scene (push: enough pixels changed; grasp: success) or adds one
to its primitive's no-change counter, a change resets that primitive's counter, and the run
stops when the two counters together exceed `max_consecutive_failures`.
"""

from dataclasses import dataclass, field
import enum
import math
import time

from vpg_common.primitives import ALLOW_BOTH, GRASP, GRASP_ONLY, PUSH, PUSH_ONLY
from vpg_executor.motion import MotionError
from vpg_executor.rewards import changed_pixels, count_objects, reward, RewardConfig
from vpg_executor.rewards import table_empty
from vpg_executor.safety import TargetRejected


class ReasonCode(enum.IntEnum):
    NONE = 0
    TABLE_CLEARED = 1
    MAX_ACTIONS = 2
    TOO_MANY_FAILURES = 3
    CANCELED = 4
    PERCEPTION_FAILED = 5
    POLICY_FAILED = 6
    MOTION_FAILED = 7
    INVALID_GOAL = 8


class PerceptionError(RuntimeError):
    """No usable heightmap in time."""


class PolicyError(RuntimeError):
    """The policy did not answer, or answered with an unusable action."""


@dataclass(frozen=True)
class Goal:
    max_actions: int
    max_consecutive_failures: int
    explore: bool = False
    epsilon: float = -1.0
    allowed: int = ALLOW_BOTH


def goal_problem(goal, max_actions_limit=10000):
    """Why a goal is invalid (a sentence), or None when it is fine."""
    if not 0 < goal.max_actions <= max_actions_limit:
        return f'max_actions must be in 1..{max_actions_limit}, got {goal.max_actions}'
    if goal.max_consecutive_failures <= 0:
        return f'max_consecutive_failures must be > 0, got {goal.max_consecutive_failures}'
    if goal.allowed not in (ALLOW_BOTH, PUSH_ONLY, GRASP_ONLY):
        return f'allowed must be 0 (both), 1 (push only) or 2 (grasp only), got {goal.allowed}'
    if not math.isfinite(goal.epsilon) or goal.epsilon > 1.0:
        return f'epsilon must be <= 1 (negative = schedule), got {goal.epsilon}'
    return None


@dataclass(frozen=True)
class Observation:
    """
    A heightmap as the loop needs it: heights (H, W) metres, plus the message to pass on.

    grid: the map's geometry (vpg_perception's HeightmapGrid), which lets the primitives
    descend fast through the space the map shows free; None = they descend slowly throughout.
    """

    height: object
    message: object = None
    grid: object = None


@dataclass(frozen=True)
class Choice:
    """The policy's decision: primitive, base-frame point (x, y, surface z), angle (rad)."""

    primitive: int
    position: tuple
    angle: float
    weights_version: int = 0
    message: object = None


@dataclass(frozen=True)
class StepReport:
    step: int
    choice: Choice
    reward: float
    grasp_success: bool
    push_changed: bool
    changed_pixels: int
    objects_seen_remaining: int
    consecutive_failures: int
    motion_error: str = ''
    scene_changed: bool = False
    """The grasp succeeded or more than change_threshold pixels changed."""
    epsilon: float = 0.0
    """Exploration probability the decision was made with (0 = greedy)."""
    timing: dict = field(default_factory=dict)
    """Wall seconds of this action's phases: decision, motion, home, perception."""
    sim_timing: dict = field(default_factory=dict)
    """The same phases in simulated (node clock) seconds, when the loop has a sim clock."""


@dataclass
class Result:
    objects_removed: int = 0
    actions: int = 0
    grasp_attempts: int = 0
    grasp_successes: int = 0
    push_attempts: int = 0
    table_cleared: bool = False
    reason_code: ReasonCode = ReasonCode.NONE
    reason: str = ''
    reports: list = field(default_factory=list)


TIMING_PHASES = ('decision', 'motion', 'home', 'perception')


def format_timing(report):
    """Write a step's phase durations: 'wall s decision 0.05 motion 3.10 ... (sim s ...)'."""
    def durations(timing):
        return ' '.join(f'{phase} {timing[phase]:.3f}' for phase in TIMING_PHASES
                        if phase in timing)

    text = f'wall s {durations(report.timing)}'
    if report.sim_timing:
        text += f' (sim s {durations(report.sim_timing)})'
    return text


def parse_timing(line):
    """Read format_timing's text back from a log line: ({phase: wall s}, {phase: sim s})."""
    wall, sim = {}, {}
    if 'wall s ' not in line:
        return wall, sim
    text = line.split('wall s ', 1)[1]
    wall_text, _, sim_text = text.partition(' (sim s ')
    for target, part in ((wall, wall_text), (sim, sim_text.rstrip(')\n '))):
        words = part.split()
        for name, value in zip(words[::2], words[1::2]):
            if name in TIMING_PHASES:
                target[name] = float(value)
    return wall, sim


class _Phases:
    """Durations of an action's phases on the wall clock and, if given, the sim clock."""

    def __init__(self, wall_clock, sim_clock):
        self._clocks = {'wall': wall_clock, 'sim': sim_clock}
        self._last = {name: clock() for name, clock in self._clocks.items() if clock}
        self.wall, self.sim = {}, {}

    def end(self, phase):
        for name, start in list(self._last.items()):
            now = self._clocks[name]()
            getattr(self, name)[phase] = now - start
            self._last[name] = now


class PickAllLoop:
    """
    One pick-all run over injected parts.

    robot: PrimitiveExecutor-like (push, grasp, go_home). perceive(): Observation taken after
    the last motion ended (raises PerceptionError). choose(observation, epsilon, allowed):
    Choice (raises PolicyError). on_transition(before, choice, after, report): publishes the
    transition. epsilon_schedule(): exploration probability when the goal asks for the schedule.
    """

    def __init__(self, robot, perceive, choose, on_transition, reward_config=RewardConfig(),
                 epsilon_schedule=lambda: 0.1, wall_clock=time.monotonic, sim_clock=None):
        self.wall_clock = wall_clock
        self.sim_clock = sim_clock
        self.robot = robot
        self.perceive = perceive
        self.choose = choose
        self.on_transition = on_transition
        self.rewards = reward_config
        self.epsilon_schedule = epsilon_schedule

    def _stop(self, result, code, reason, home=True):
        if home:
            try:
                self.robot.go_home()
            except (MotionError, TargetRejected) as error:
                reason += f' (and going home failed: {error})'
                code = code if code != ReasonCode.TABLE_CLEARED else ReasonCode.MOTION_FAILED
        result.reason_code, result.reason = code, reason
        result.table_cleared = code == ReasonCode.TABLE_CLEARED
        return result

    def run(self, goal, cancel_requested=lambda: False, on_feedback=lambda report: None):
        result = Result()
        problem = goal_problem(goal)
        if problem:
            return self._stop(result, ReasonCode.INVALID_GOAL, problem, home=False)
        no_change = {PUSH: 0, GRASP: 0}
        try:
            self.robot.go_home()
        except (MotionError, TargetRejected) as error:
            return self._stop(result, ReasonCode.MOTION_FAILED,
                              f'could not reach home: {error}', home=False)
        try:
            before = self.perceive()
        except PerceptionError as error:
            return self._stop(result, ReasonCode.PERCEPTION_FAILED, str(error))
        while True:
            if cancel_requested():
                return self._stop(result, ReasonCode.CANCELED, 'canceled by the client')
            if table_empty(before.height, self.rewards):
                return self._stop(result, ReasonCode.TABLE_CLEARED,
                                  f'table clear after {result.actions} actions')
            if result.actions >= goal.max_actions:
                return self._stop(result, ReasonCode.MAX_ACTIONS,
                                  f'reached max_actions ({goal.max_actions})')
            epsilon = 0.0
            if goal.explore:
                epsilon = goal.epsilon if goal.epsilon >= 0 else self.epsilon_schedule()
            phases = _Phases(self.wall_clock, self.sim_clock)
            try:
                choice = self.choose(before, epsilon, goal.allowed)
            except PolicyError as error:
                return self._stop(result, ReasonCode.POLICY_FAILED, str(error))
            phases.end('decision')

            grasp_success, motion_error = False, ''
            try:
                if choice.primitive == GRASP:
                    result.grasp_attempts += 1
                    grasp_success = self.robot.grasp(choice.position, choice.angle,
                                                     heightmap=before).success
                else:
                    result.push_attempts += 1
                    self.robot.push(choice.position, choice.angle, heightmap=before)
            except (MotionError, TargetRejected) as error:
                motion_error = str(error)
            result.actions += 1
            phases.end('motion')
            try:
                self.robot.go_home()
            except (MotionError, TargetRejected) as error:
                return self._stop(result, ReasonCode.MOTION_FAILED,
                                  f'could not return home after action {result.actions}: '
                                  f'{error}', home=False)
            phases.end('home')
            try:
                after = self.perceive()
            except PerceptionError as error:
                return self._stop(result, ReasonCode.PERCEPTION_FAILED, str(error))
            phases.end('perception')

            changed = changed_pixels(before.height, after.height, self.rewards)
            push_changed = choice.primitive == PUSH and changed > self.rewards.change_threshold
            grasp_success = bool(grasp_success)
            if grasp_success:
                result.grasp_successes += 1
                result.objects_removed += 1
            scene_changed = grasp_success or changed > self.rewards.change_threshold
            if scene_changed:
                no_change[choice.primitive] = 0
            else:
                no_change[choice.primitive] += 1
            report = StepReport(
                step=result.actions, choice=choice,
                reward=reward(choice.primitive == GRASP, grasp_success, push_changed,
                              self.rewards),
                grasp_success=grasp_success, push_changed=push_changed, changed_pixels=changed,
                scene_changed=scene_changed, epsilon=float(epsilon),
                objects_seen_remaining=count_objects(after.height, self.rewards),
                consecutive_failures=no_change[PUSH] + no_change[GRASP],
                motion_error=motion_error, timing=phases.wall, sim_timing=phases.sim)
            result.reports.append(report)
            self.on_transition(before, choice, after, report)
            on_feedback(report)
            if report.consecutive_failures > goal.max_consecutive_failures:
                return self._stop(result, ReasonCode.TOO_MANY_FAILURES,
                                  f'{report.consecutive_failures} actions without a change '
                                  f'(limit {goal.max_consecutive_failures})')
            before = after
