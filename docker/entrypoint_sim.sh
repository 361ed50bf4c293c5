#!/usr/bin/env bash
# Enter the workspace's environment (venv with the ROS 2 wheels + colcon install space), then
# run the command.
set -e
cd /opt/vpg_ws
# shellcheck disable=SC1091
. tools/env.sh
exec "$@"
