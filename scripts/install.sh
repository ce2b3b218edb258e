#!/usr/bin/env bash
# Idempotent installer behind `make install`: each step checks first and only
# does work that is missing, so a second run takes seconds.
#
# Steps: Debian build deps (and Chromium, for the display's browser test) ->
# .venv -> torch 2.13.0 (CPU wheel on disk when present) -> MinkowskiEngine
# 0.5.4 (its Python >= 3.10 import fixed in place) and larcv 3.5.1 from their
# sdists -> this project in editable mode with its test extras.
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

# 1b. Chromium, for the event display's browser test (tests/test_analysis_display.py).
#     Optional: without root (or passwordless sudo) and apt-get that test is
#     skipped, saying why.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    say "installing Chromium (headless browser test of the event display)"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        chromium >/dev/null; } || say "could not install chromium: the browser test will be skipped"
  else
    say "Chromium not installed (needs root and apt-get): the browser test will be skipped"
  fi
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

# 4b. ME 0.5.4 does `from collections import Sequence`, gone since Python 3.10:
#     rewrite those imports to collections.abc in the installed files, so that
#     `import MinkowskiEngine` works in any fresh interpreter (not only after
#     mlreco_spice.backend's aliases). Idempotent; a reinstall is patched again.
"$PY" scripts/patch_minkowski.py >/dev/null || fail "could not patch MinkowskiEngine's collections imports"

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

# The CPU-only build warns on import; that is the expected build here.
"$PY" -W "ignore:The MinkowskiEngine was compiled with CPU_ONLY" \
  -c "import mlreco_spice, parsers, analysis, MinkowskiEngine, larcv" \
  || fail "installed, but the import check failed (see the message above)"
say "ready: $VENV"
