#!/bin/bash
# usage: bench/startup.sh TREE ARGS...  -> 10 runs, prints mean wall/user seconds
cd "$1"; shift
P=${PYTHON:-python}
for i in $(seq 10); do /usr/bin/time -f "%e %U" $P cli.py "$@" >/dev/null 2>>"${TMPDIR:-/tmp}/startup.$$" ; done
awk '{w+=$1;u+=$2} END {printf "wall %.3f s  user %.3f s (mean of %d)\n", w/NR, u/NR, NR}' "${TMPDIR:-/tmp}/startup.$$"; rm "${TMPDIR:-/tmp}/startup.$$"
