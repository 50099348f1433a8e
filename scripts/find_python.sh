#!/usr/bin/env bash
# Print the absolute path of a working CPython for one of the project's environments.
#
#   scripts/find_python.sh runtime   # .venv: 3.10 (OpenFHE's 1.6.1.0.22.4 wheel holds only a
#                                    # cpython-310 module), else 3.12 (Ubuntu 24.04, where
#                                    # OpenFHE's 3.12 wheels find GLIBCXX_3.4.32)
#   scripts/find_python.sh train     # .venv-train: 3.11 (the CPU torch wheel on disk is cp311)
#
# CRYPTOFACE_PYTHON (runtime) / CRYPTOFACE_TRAIN_PYTHON (train) override the search.
# Every candidate is actually run: a pyenv shim on the PATH may exist and still fail
# ("version not installed"), so being on the PATH proves nothing.
set -euo pipefail

role=${1:?usage: find_python.sh runtime|train}
case $role in
  runtime) versions=(3.10 3.12); override=${CRYPTOFACE_PYTHON:-} ;;
  train)   versions=(3.11);      override=${CRYPTOFACE_TRAIN_PYTHON:-} ;;
  *) echo "find_python.sh: unknown role '$role' (runtime|train)" >&2; exit 2 ;;
esac

tried=()

# Run a candidate; on success print the real interpreter path (never the shim) and stop.
# Extra leading arguments are environment assignments (PYENV_VERSION=...).
check() {
  local want=$1; shift
  local out
  tried+=("$*")
  out=$(env "$@" -c 'import sys, venv, ensurepip
print("%d.%d" % sys.version_info[:2], sys.executable)' 2>/dev/null) || return 1
  [[ ${out%% *} == "$want" ]] || return 1
  echo "${out#* }"
  exit 0
}

if [[ -n $override ]]; then
  v=$("$override" -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    || { echo "find_python.sh: $override does not run" >&2; exit 1; }
  check "$v" "$override"
  echo "find_python.sh: $override has no venv/ensurepip module" >&2; exit 1
fi

pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")

for want in "${versions[@]}"; do
  # 1. pythonX.Y on the PATH (a real interpreter or a shim that happens to resolve)
  if command -v "python$want" >/dev/null; then check "$want" "python$want" || true; fi
  # 2. a pyenv-installed X.Y.z selected through the shim
  if command -v pyenv >/dev/null; then
    for pv in $(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}\.[0-9]+$" | sort -t. -k3 -rn); do
      check "$want" "PYENV_VERSION=$pv" "python$want" || true
    done
  fi
  # 3. pyenv's install folders directly (pyenv itself need not be on the PATH)
  for exe in $(ls -d "$pyenv_root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV); do
    check "$want" "$exe" || true
  done
done

{
  echo "find_python.sh: no usable Python ${versions[*]} for the $role environment."
  echo "  tried: ${tried[*]:-nothing (no python$want on the PATH, no pyenv versions in $pyenv_root)}"
  case $role in
    runtime) echo "  Install CPython 3.10 (e.g. 'pyenv install 3.10.13') or, on Ubuntu 24.04, 3.12;"
             echo "  or point CRYPTOFACE_PYTHON at one. See README, Set-up." ;;
    train)   echo "  Install CPython 3.11 (e.g. 'pyenv install 3.11.7') or point CRYPTOFACE_TRAIN_PYTHON at one." ;;
  esac
} >&2
exit 1
