#!/usr/bin/env bash
# Create (if needed) and fill one of the project's two environments at the repo root.
#
#   scripts/setup_venv.sh runtime   # .venv: core + the FHE backend plugins (no torch)
#   scripts/setup_venv.sh train     # .venv-train: torch (CPU) + exporters
#
# The Makefile calls this only when a pyproject.toml or a script changed (stamp files),
# so repeated `make test` runs do not reinstall anything.
set -euo pipefail
cd "$(dirname "$0")/.."

role=${1:?usage: setup_venv.sh runtime|train}
case $role in
  runtime) venv=.venv ;;
  train)   venv=.venv-train ;;
  *) echo "setup_venv.sh: unknown role '$role'" >&2; exit 2 ;;
esac
wheels=${CRYPTOFACE_WHEELS:-${CRYPTOFACE_CACHE:-$HOME/.cache/cryptoface}/wheels}

py=$(scripts/find_python.sh "$role")
want=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# Keep an existing venv only if it still runs and is on the version we would pick now.
have=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
if [[ $have != "$want" ]]; then
  [[ -e $venv ]] && echo "$venv: python '${have:-broken}' is not $want, recreating"
  rm -rf "$venv"
  echo "$venv: creating with $py (Python $want)"
  "$py" -m venv "$venv"
fi
# pip.conf here lists local file:// indexes that may not exist: pip then warns once per
# package. Drop only those lines; everything else pip says still shows.
pip_install() {
  "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q "$@" \
    2> >(grep -v "^WARNING: Location 'file://.* is ignored" >&2)
}

# A plugin folder whose pyproject.toml is not written yet is skipped, loudly.
present() {
  if [[ -f $1/pyproject.toml ]]; then return 0; fi
  echo "$venv: SKIPPING $1 (no $1/pyproject.toml yet)" >&2
  return 1
}

if [[ $role == runtime ]]; then
  [[ -f pyproject.toml ]] || { echo "setup_venv.sh: no pyproject.toml at the repo root (core package)" >&2; exit 1; }
  reqs=(-e '.[test]')
  for lib in tenseal openfhe pyfhel; do
    if present "backends/$lib"; then reqs+=(-e "backends/$lib"); fi
  done
  # Pyfhel only exists as an sdist that does not build offline as published: build our
  # wheel once (cached), and forbid pip from ever choosing the sdist.
  if [[ -f backends/pyfhel/pyproject.toml ]]; then
    scripts/build_pyfhel_wheel.sh "$venv/bin/python"
  fi
  echo "$venv: installing ${reqs[*]}"
  pip_install --find-links "$wheels" --only-binary pyfhel "${reqs[@]}"
else
  # Always name torch==2.13.0: it is the CPU wheel on disk (pip.conf find-links). Any other
  # torch request would download a multi-GB CUDA build instead.
  reqs=(torch==2.13.0)
  if present exporters; then
    reqs+=(-e 'exporters[test]')
    # If exporters depends on the core, take it from this checkout, never from an index.
    if grep -Eq '"cryptoface([<>=!~ ;\[]|")' exporters/pyproject.toml; then reqs+=(-e .); fi
  fi
  echo "$venv: installing ${reqs[*]}"
  pip_install "${reqs[@]}"
fi
echo "$venv: ready ($("$venv/bin/python" --version), ${SECONDS}s)"
