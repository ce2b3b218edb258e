#!/usr/bin/env bash
# Idempotent installer behind `make install`: each step checks first and only
# does work that is missing, so a second run takes seconds.
#
# Steps: Debian build deps -> .venv -> torch 2.13.0 (CPU wheel on disk when
# present) -> MinkowskiEngine 0.5.4 and larcv 3.5.1 from their sdists ->
# this project in editable mode with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check -q"
TORCH_VERSION=2.13.0
ME_VERSION=0.5.4
LARCV_VERSION=3.5.1

say()  { printf '[install] %s\n' "$*"; }
fail() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Debian build dependencies (MinkowskiEngine needs BLAS, larcv needs HDF5).
missing=()
for pkg in libopenblas-dev libhdf5-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  command -v apt-get >/dev/null || fail "apt-get not found: install ${missing[*]} with your package manager"
  $SUDO apt-get update -qq || fail "apt-get update failed: cannot install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed (needed to build MinkowskiEngine/larcv)"
fi

# 2. Virtual environment.
if [ ! -x "$PY" ]; then
  command -v python3 >/dev/null || fail "python3 not found (Python 3.11 expected)"
  say "creating virtual environment $VENV"
  python3 -m venv "$VENV" || fail "python3 -m venv failed: install the python3-venv package"
fi

have() { "$PY" - "$@" <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
name, version = sys.argv[1], sys.argv[2]
sys.exit(0 if md.version(name) == version else 1)
PYEOF
}

# 3. torch: pin the exact version so pip takes the CPU wheel from the local
#    wheel directory instead of a multi-GB CUDA build from PyPI.
if ! have torch "$TORCH_VERSION" && ! have torch "$TORCH_VERSION+cpu"; then
  say "installing torch==$TORCH_VERSION"
  $PIP install "torch==$TORCH_VERSION" || fail "could not install torch==$TORCH_VERSION"
fi

# 4. MinkowskiEngine from its sdist. Its setup.py needs numpy.distutils
#    (numpy<2) and old setuptools, and must see the installed torch
#    (--no-build-isolation). pip caches the built wheel, so this is slow once.
if ! have MinkowskiEngine "$ME_VERSION"; then
  say "building MinkowskiEngine==$ME_VERSION (about 10 minutes the first time)"
  $PIP install 'numpy<2' 'setuptools<60' wheel ninja || fail "could not install MinkowskiEngine build tools"
  MAX_JOBS=${MAX_JOBS:-2} $PIP install --no-build-isolation "minkowskiengine==$ME_VERSION" \
    || fail "MinkowskiEngine $ME_VERSION failed to build (needs libopenblas-dev, g++, torch)"
fi

# 5. larcv3 from its sdist (CMake, HDF5).
if ! have larcv "$LARCV_VERSION"; then
  say "building larcv==$LARCV_VERSION (about 10 minutes the first time)"
  CMAKE_POLICY_VERSION_MINIMUM=3.5 CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    $PIP install "larcv==$LARCV_VERSION" || fail "larcv $LARCV_VERSION failed to build (needs libhdf5-dev, cmake, g++)"
fi

# 6. This project, editable, with test extras. Re-run only when its metadata
#    changed (the stamp holds a hash of setup.cfg + pyproject.toml).
stamp="$VENV/.mlreco_spice-installed"
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$PY" -c "import mlreco_spice" >/dev/null 2>&1; then
  say "installing mlreco_spice (editable, with test extras)"
  $PIP install -e ".[test]" || fail "pip install -e .[test] failed"
  echo "$want" > "$stamp"
fi

"$PY" -c "import mlreco_spice, parsers, analysis, MinkowskiEngine, larcv" 2>/dev/null \
  || "$PY" -c "import mlreco_spice.backend as b; b.import_minkowski(); import larcv" \
  || fail "installed, but the import check failed (see the message above)"
say "ready: $VENV"
