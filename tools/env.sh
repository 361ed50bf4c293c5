# Source me: puts the workspace's virtual environment and colcon install space on the path.
#   . tools/env.sh                 (after tools/bootstrap.sh)
# With `--no-install` only the venv is set up (used while building).
# install/setup.bash and activate read unset variables; callers may run under `set -u`.
case $- in *u*) _vpg_nounset=1; set +u ;; *) _vpg_nounset= ;; esac
_vpg_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$_vpg_root/.venv/bin/activate" ]; then
  echo "vpg: no .venv in $_vpg_root; run tools/bootstrap.sh (or make setup) first" >&2
  [ -n "$_vpg_nounset" ] && set -u
  return 1
fi
# shellcheck disable=SC1091
. "$_vpg_root/.venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  # ROS from wheels: the venv is the underlay that ament and CMake must find.
  case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
  case ":${CMAKE_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;; esac
fi
mkdir -p "$_vpg_root/log"
if [ "${1:-}" != "--no-install" ] && [ -f "$_vpg_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_vpg_root/install/setup.bash"
fi
# Camera images (~1 MB) sent best-effort over Fast DDS's default UDP transport lose about half
# of the frames on one host; its LARGE_DATA builtin transports (shared memory + TCP) lose none.
# rmw_fastrtps ignores this variable under ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (it then
# builds a 512 KB shared-memory segment, too small for one image): the runs' own domain claim
# (vpg_bringup.ros_domain) uses SYSTEM_DEFAULT while it is set (the tests keep LOCALHOST).
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
# Headless rendering for the MuJoCo cell unless the user chose a backend.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-$MUJOCO_GL}"
[ -n "$_vpg_nounset" ] && set -u
unset _vpg_root _vpg_nounset
