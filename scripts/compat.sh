#!/usr/bin/env bash
# Builds the extension for every CPython 3.10-3.13 found on this machine (python3.X on
# PATH or under pyenv) and runs the server, loop and JSON tests with each (the JSON codec has
# version-specific fast paths), in venvs under build/compat.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for minor in 10 11 12 13; do
    py=""
    if command -v pyenv >/dev/null 2>&1; then
        py=$(ls -d "$(pyenv root)"/versions/3."$minor".*/bin/python 2>/dev/null | tail -n 1 || true)
    fi
    if [ -z "$py" ]; then
        py=$(command -v "python3.$minor" || true)
    fi
    # pyenv shims exist for versions that are not selected: check the interpreter runs.
    if [ -z "$py" ] || ! "$py" -c "pass" 2>/dev/null; then
        echo "compat: python3.$minor not found, skipped"
        continue
    fi
    venv="$root/build/compat/venv3.$minor"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/pip" install -q -r "$root/requirements/build.txt" -r "$root/requirements/test.txt"
    build="$root/build/compat/3.$minor"
    "$venv/bin/cmake" -S "$root" -B "$build" -G Ninja -DPython_EXECUTABLE="$venv/bin/python" > /dev/null
    "$venv/bin/cmake" --build "$build" -j 2 > /dev/null
    pkg="$build/pkg"
    rm -rf "$pkg" && mkdir -p "$pkg"
    cp -r "$root/src/data_bridge" "$pkg/" && rm -f "$pkg"/data_bridge/_core*.so
    cp "$build"/_core*.so "$pkg/data_bridge/"
    echo "compat: Python 3.$minor ($py)"
    # -o pythonpath= drops pyproject's "src" so that this build's package is imported.
    if ! PYTHONPATH="$pkg" "$venv/bin/python" -m pytest -q -p no:cacheprovider -o pythonpath= \
        "$root"/tests/py/test_server_*.py "$root"/tests/py/test_loop_*.py \
        "$root"/tests/py/test_json_*.py; then
        status=1
    fi
done
exit $status
