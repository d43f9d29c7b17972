#!/usr/bin/env bash
# Scheduling benchmark (issue: foundation): 1,000 targets x 1,000 series at a
# 15 s scrape interval from local stand-ins on loopback. Pass criterion: the
# scrape interval seen by the targets stays within 5% of 15 s at p99.
#
# Uses the shared harness in ../shared/bench (its targets.py serves the
# stand-ins and records the inter-scrape intervals each target sees) with
# watchpost's own SUT plugin from benches/sut/. Prometheus runs beside it in
# the same invocation for reference unless SUTS is set:
#
#   benches/scheduling.sh                    # prometheus + watchpost
#   SUTS=watchpost benches/scheduling.sh     # watchpost only
#
# Needs: ../shared/bench/setup.sh run once (Debian prometheus, a venv).
# Bounded: ~60 s warm-up + 120 s window per system.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$(cd "$root/../shared/bench" && pwd)
suts=${SUTS:-prometheus,watchpost}
suts=${suts//watchpost/$root/benches/sut/watchpost.sh}
cargo build --release -j2 --manifest-path "$root/Cargo.toml"
export WATCHPOST_BIN="$root/target/release/watchpost"
exec "$bench/run.sh" ingest --k 1000 --m 1000 --interval 15 --warmup 60 --duration 120 --slices 4 --sut "$suts" "$@"
