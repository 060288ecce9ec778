#!/bin/sh
# Instructions per request (valgrind cachegrind, deterministic where wall-clock time on a
# shared machine is not): (I(2N) - I(N)) / N for each MODE of benchmarks/one.py, against
# an origin in its own process. Usage: benchmarks/instructions.sh [N] [MODES...]
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${1:-200}; shift 2>/dev/null || true
MODES=${*:-bare miss hit}
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OUT=${OUT:-$(mktemp -d)}
$PY benchmarks/one.py serve "$PORT" & ORIGIN=$!
trap 'kill $ORIGIN' EXIT
sleep 2
refs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$OUT/cg.$1.$2" \
        $PY benchmarks/one.py "$1" "$2" "$PORT" 2>&1 | sed -n 's/.*I *refs: *//p' | tr -d ,
}
for mode in $MODES; do
    a=$(refs "$mode" "$N"); b=$(refs "$mode" $((2 * N)))
    echo "$mode: $(( (b - a) / N )) instructions per request (cachegrind files in $OUT)"
done
