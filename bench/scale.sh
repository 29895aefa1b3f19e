#!/bin/sh
# bench/scale: the seeds' scaling study through a real grid (see bench/scale.py for options).
# Runs with Debian's python3 (python3-mpi4py lives there, not in a pyenv).
exec /usr/bin/python3 "$(dirname "$0")/scale.py" "$@"
