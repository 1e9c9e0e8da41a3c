#!/usr/bin/env bash
# Start a local devnet of N nodes (default 4) with RPC on 8545.. ; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -- devnet --nodes "${1:-4}" "${@:2}"
