#!/usr/bin/env bash
# The Python package's tests, in a virtual environment of their own (target/pyvenv): installs
# the build and test tools there if missing (maturin, pytest, numpy from PyPI), installs the
# package as the README says (`pip install ./python`: maturin builds crates/hyperfabric-py in
# release), then runs pytest against the installed package (python/tests, which also runs
# every program of examples/python). PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=target/pyvenv
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV"; then
        # Debian's python3 ships venv separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$VENV"
            "$PY" -m venv "$VENV"
        else
            echo "test-python.sh: '$PY -m venv' failed; install python3-venv or set PYTHON" >&2
            exit 1
        fi
    fi
fi
VPY="$PWD/$VENV/bin/python"
if ! "$VPY" -c "import maturin, pytest, numpy" 2>/dev/null; then
    "$VPY" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" pytest numpy
fi
"$VPY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
# From the tests' own directory, so `import hyperfabric` is the installed package.
cd python/tests
"$VPY" -m pytest -q -p no:cacheprovider .
