#!/usr/bin/env bash
# Source ROS 2, the Robotiq driver's underlay (real image only) and this workspace, then run
# the command (docker run ... <command>).
set -e
# shellcheck disable=SC1091
source "/opt/ros/${ROS_DISTRO}/setup.bash"
if [ -f /opt/robotiq_ws/install/setup.bash ]; then
  # shellcheck disable=SC1091
  source /opt/robotiq_ws/install/setup.bash
fi
# shellcheck disable=SC1091
source /opt/vpg_ws/install/setup.bash
exec "$@"
