# Functions shared by tools/demo, tools/run-tests and tools/setup-glance.
# Sourced, not run: ". tools/common.sh" (bash), after setting TOOL to the
# name that prefixes the messages.

# ironic-images needs Python 3.11 or newer (setup.cfg python_requires).
MIN_PYTHON_VERSION=3.11

# check_python PYTHON
# Succeed if PYTHON (a command or a path) runs and is Python 3.11 or newer;
# otherwise print why and how to get one, and fail.
check_python() {
    local python=$1 path version
    if ! path=$(command -v "$python" 2>/dev/null); then
        echo "$TOOL: $python: command not found; ironic-images needs" \
             "Python $MIN_PYTHON_VERSION or newer" >&2
        echo "$TOOL: on Debian and Ubuntu, tools/install-bindep installs" \
             "it (package python3); elsewhere set PYTHON to one" >&2
        return 1
    fi
    version=$("$python" -c 'import sys; print(sys.version.split()[0])' \
              2>/dev/null) || {
        echo "$TOOL: $path does not run" >&2
        return 1
    }
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            2>/dev/null; then
        echo "$TOOL: ironic-images needs Python $MIN_PYTHON_VERSION or" \
             "newer; $path is Python $version" >&2
        echo "$TOOL: Debian 12 and newer and Ubuntu 24.04 and newer have" \
             "it as python3; elsewhere install one and set PYTHON to it" \
             "(e.g. PYTHON=python3.12 $0)" >&2
        return 1
    fi
}

# venv_works DIR
# Succeed if DIR is a virtualenv whose interpreter runs, is Python 3.11 or
# newer and has pip.
venv_works() {
    [ -f "$1/pyvenv.cfg" ] && [ -x "$1/bin/python" ] \
        && "$1/bin/python" -c \
            'import sys, pip; sys.exit(sys.version_info < (3, 11))' \
            >/dev/null 2>&1
}

# ensure_venv DIR PYTHON
# Make DIR a working virtualenv of PYTHON (python -m venv), unless it is
# one already. A broken or half-made one (no pip, as "python3 -m venv"
# leaves without ensurepip; an interpreter that is gone or too old) is
# removed and made again; anything else at DIR is left alone (failure).
ensure_venv() {
    local dir=$1 python=$2
    venv_works "$dir" && return 0
    if [ -e "$dir" ] || [ -L "$dir" ]; then
        if [ -d "$dir" ] && [ ! -L "$dir" ] && { [ -f "$dir/pyvenv.cfg" ] \
                || [ -z "$(ls -A "$dir" 2>/dev/null)" ]; }; then
            echo "$TOOL: $dir is a broken or incomplete virtualenv;" \
                 "making it again"
            rm -rf "$dir"
        else
            echo "$TOOL: $dir exists and is not a virtualenv; move it" \
                 "away" >&2
            return 1
        fi
    fi
    if ! "$python" -m venv "$dir" </dev/null; then
        rm -rf "$dir"
        echo "$TOOL: could not create a virtualenv with $python -m venv" \
             "(Debian and Ubuntu: package python3-venv, which" \
             "tools/install-bindep installs)" >&2
        return 1
    fi
    if ! venv_works "$dir"; then
        rm -rf "$dir"
        echo "$TOOL: $python -m venv made a virtualenv without pip" >&2
        return 1
    fi
}
