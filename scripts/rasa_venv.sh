#!/usr/bin/env bash
# Build ./.rasa-venv with Rasa Open Source 3.6.21 on this Python 3.11 (docs/rasa.md says why and how).
# Rasa 3.6 declares Requires-Python <3.11, so we patch the two wheels' METADATA before installing them.
# Idempotent: does nothing when the venv already holds a working Rasa.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${RASA_VENV:-.rasa-venv}"
RASA_VERSION=3.6.21
SDK_VERSION=3.6.2
STAMP="$VENV/.rasa-$RASA_VERSION-installed"

if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import rasa.version" 2>/dev/null; then
  echo "rasa venv $VENV: ready (rasa $RASA_VERSION)"
  exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] < (3, 12))'; then
  echo "rasa_venv.sh: Rasa 3.6 needs Python 3.8 to 3.11; $PYTHON is $("$PYTHON" -V 2>&1) (set PYTHON=...)" >&2
  exit 1
fi

start=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# The machine's pip config lists local indexes that lack most of Rasa's packages: hide that noise.
pip_() { "$VENV/bin/pip" --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }

pip_ download --quiet --no-deps --ignore-requires-python -d "$work/orig" \
  "rasa==$RASA_VERSION" "rasa-sdk==$SDK_VERSION"
"$PYTHON" scripts/patch_wheel_metadata.py "$work"/orig/*.whl "$work/patched"

# jax is an optional tensorflow extra that pip would otherwise resolve to a huge release.
echo "jax==0.4.13" > "$work/constraints.txt"
pip_ install --quiet -c "$work/constraints.txt" "$work"/patched/*.whl
pip_ check

touch "$STAMP"
echo "rasa venv $VENV: built in $(( $(date +%s) - start )) s, size $(du -sh "$VENV" | cut -f1)"
