# shellcheck shell=bash
# System under test: watchpost, for the shared benchmark harness
# (../shared/bench). Same contract as the harness's sut/prometheus.sh.
# This copy tracks watchpost's real interface (flags, self-metric names);
# pass it with `--sut prometheus,benches/sut/watchpost.sh`.  watchpost is one process that scrapes, evaluates the rules
# and sends e-mail itself, so there is no second process and no SUT_AUX_PORT use.
#
# Run with:  ./run.sh ingest --sut watchpost      (or --sut prometheus,watchpost)
# Point WATCHPOST_BIN at the binary (default: watchpost on PATH); a relative path is
# taken relative to the bench folder, e.g. WATCHPOST_BIN=../target/release/watchpost

WATCHPOST_BIN=${WATCHPOST_BIN:-watchpost}

sut_info() {
    echo "name=watchpost"
    echo "version=$("$WATCHPOST_BIN" --version 2>&1 | head -n 1)"
    # watchpost serves a Prometheus-compatible /api/v1/query;
    # the harness then also reports scrape_duration_seconds percentiles.
    echo "promql_api=1"
    echo "metrics_path=/metrics"
    # Self-metric names the harness reads if present (system-reported figures only;
    # the headline figures — CPU, RSS, latency — are measured from outside).
    echo "metric_head_series=watchpost_storage_head_series"
    echo "metric_samples_appended=watchpost_storage_head_samples_appended_total"
}

_wait_http() {  # bounded: up to 60 s; gives up at once if process $2 has exited
    local url=$1 pid=${2:-} i
    for i in $(seq 1 600); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid exited before $url was ready; see logs in $SUT_DIR" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "not ready after 60s: $url" >&2
    return 1
}

# Writes $SUT_DIR/watchpost.yml = harness config + an Alertmanager-shaped `notify:` section
# (watchpost reads alertmanager.yml's route/receivers inline under `notify:`).
# WATCHPOST_RULE_EVALUATION (interval | on_scrape, default interval) sets
# global.rule_evaluation: on_scrape evaluates a group right after a scrape
# that stored a metric it selects (watchpost's low-latency mode).
_watchpost_config() {
    cp "$SUT_CONFIG" "$SUT_DIR/watchpost.yml"
    if [ -n "${WATCHPOST_RULE_EVALUATION:-}" ]; then
        sed -i "s/^global:\s*$/global:\n  rule_evaluation: ${WATCHPOST_RULE_EVALUATION}/" "$SUT_DIR/watchpost.yml"
    fi
    if [ -n "${SUT_SMTP_ADDR:-}" ]; then
        cat >>"$SUT_DIR/watchpost.yml" <<EOF
notify:
  route:
    receiver: mail
    group_by: [$(echo "$SUT_GROUP_BY" | sed 's/,/, /g')]
    group_wait: ${SUT_GROUP_WAIT}
    group_interval: ${SUT_GROUP_INTERVAL}
    repeat_interval: ${SUT_REPEAT_INTERVAL}
  receivers:
    - name: mail
      email_configs:
        - to: '${SUT_EMAIL_TO}'
          from: '${SUT_EMAIL_FROM}'
          smarthost: '${SUT_SMTP_ADDR}'
          require_tls: false
          send_resolved: ${SUT_SEND_RESOLVED:-true}
EOF
    fi
}

# ============================================================================
# >>> THE ONE FUNCTION TO EDIT: how to start watchpost <<<
# Must start watchpost in the background with its output to a log file, append
# "watchpost <pid>" to $SUT_PIDFILE, and return only when it is ready.
# ============================================================================
sut_start() {
    mkdir -p "$SUT_DIR/data"
    _watchpost_config
    "$WATCHPOST_BIN" run \
        --config.file="$SUT_DIR/watchpost.yml" \
        --web.listen-address="127.0.0.1:${SUT_PORT}" \
        --storage.path="$SUT_DIR/data" \
        >"$SUT_DIR/watchpost.log" 2>&1 </dev/null &
    echo "watchpost $!" >>"$SUT_PIDFILE"
    _wait_http "http://127.0.0.1:${SUT_PORT}/-/ready" $!
}
# ============================================================================

# Used by the rules measurement (it alternates phases without/with rules in one
# process).  Assumes watchpost re-reads its config on SIGHUP, like Prometheus.
sut_reload() {
    _watchpost_config
    local pid
    pid=$(awk '$1=="watchpost"{print $2}' "$SUT_PIDFILE" | tail -n 1)
    kill -HUP "$pid"
}
