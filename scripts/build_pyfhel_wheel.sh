#!/usr/bin/env bash
# Build Pyfhel 3.5.0 into a wheel once and cache it, so installs never compile it again.
#
#   scripts/build_pyfhel_wheel.sh PYTHON   # PYTHON: the runtime venv's interpreter
#
# Why: Pyfhel 3.5.0 is an sdist only, and its bundled SEAL build git-clones Microsoft GSL
# (and uses zlib/zstd), which fails offline. We switch those three SEAL options off.
# Cache: ${CRYPTOFACE_WHEELS:-~/.cache/cryptoface/wheels}; the build log sits next to it.
set -euo pipefail

py=${1:?usage: build_pyfhel_wheel.sh PYTHON}
[[ $py == */* ]] && py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")  # we cd later
cache=${CRYPTOFACE_CACHE:-$HOME/.cache/cryptoface}
wheels=${CRYPTOFACE_WHEELS:-$cache/wheels}
log=$cache/pyfhel-3.5.0-build.log
mkdir -p "$wheels"

tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
cached() { compgen -G "$wheels/[Pp]yfhel-3.5.0-$tag-$tag-*.whl" >/dev/null; }

# One build at a time per machine (two CI clones may start together).
exec 9>"$cache/pyfhel-build.lock"
flock 9
if cached; then echo "Pyfhel 3.5.0 ($tag): cached wheel in $wheels"; exit 0; fi

echo "Pyfhel 3.5.0 ($tag): building the wheel once (about 4 minutes; log: $log)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$log"
fail() { echo "Pyfhel build failed: $1. Last lines of $log:" >&2; tail -n 40 "$log" >&2; exit 1; }

# --no-binary pyfhel, not :all: (which would also force numpy/meson from source in the
# build environment, and that fails).
"$py" -m pip download --no-deps --no-binary pyfhel pyfhel==3.5.0 -d "$work" >>"$log" 2>&1 \
  || fail "download"
tar -xzf "$work"/pyfhel-3.5.0.tar.gz -C "$work"
src=$work/pyfhel-3.5.0

# The [cpplibraries.SEAL.cmake_opts] table is indented with spaces and tabs and the file
# has CRLF line endings: replace only the values, keep everything else byte for byte,
# then parse the result and check it, rather than trusting the regex.
"$py" - "$src/pyproject.toml" <<'PYEOF' >>"$log" 2>&1 || fail "patching pyproject.toml"
import re, sys
try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors a TOML parser
    try:
        import tomli as tomllib
    except ImportError:
        from pip._vendor import tomli as tomllib
path = sys.argv[1]
keys = ("SEAL_USE_MSGSL", "SEAL_USE_ZLIB", "SEAL_USE_ZSTD")
with open(path, newline="") as f:
    text = f.read()
text, n = re.subn(r"(?m)^([ \t]*(%s)[ \t]*=[ \t]*)'ON'" % "|".join(keys), r"\1'OFF'", text)
opts = tomllib.loads(text)["cpplibraries"]["SEAL"]["cmake_opts"]
bad = {k: opts.get(k) for k in keys if opts.get(k) != "OFF"}
if n != 3 or bad:
    sys.exit(f"expected 3 replacements and all OFF, got {n} replacements, not OFF: {bad}")
with open(path, "w", newline="") as f:
    f.write(text)
print("patched", path, {k: opts[k] for k in keys})
PYEOF

# Build into a scratch folder and move the wheel in at the end, so a half-written wheel
# never looks cached.
(cd "$src" && CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$py" -m pip wheel --no-deps -w "$work/dist" .) >>"$log" 2>&1 || fail "pip wheel"
whl=$(compgen -G "$work/dist/[Pp]yfhel-3.5.0-$tag-$tag-*.whl") || fail "no $tag wheel produced"

# Check the wheel really works in the runtime venv before caching it.
"$py" -m pip install --only-binary pyfhel --find-links "$work/dist" "$whl" >>"$log" 2>&1 \
  || fail "installing the new wheel"
"$py" - <<'PYEOF' >>"$log" 2>&1 || fail "import check"
from Pyfhel import Pyfhel
HE = Pyfhel()
HE.contextGen(scheme="ckks", n=8192, scale=2**30, qi_sizes=[60, 30, 30, 60])
HE.keyGen()
print("Pyfhel import check OK")
PYEOF
mv "$whl" "$wheels/"
echo "Pyfhel 3.5.0 ($tag): built and cached $wheels/$(basename "$whl")"
