#!/usr/bin/env bash
# The propagation benchmark with the figures quoted in the issue notes.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -- bench propagation --nodes "${NODES:-8}" --blocks "${BLOCKS:-20}" --tps "${TPS:-200}" --out "${OUT:-propagation.json}" "$@"
