#!/usr/bin/env python3
"""Side-by-side PromQL latency: watchpost vs Prometheus on identical data.

Both systems scrape the same synthetic targets in the same run. The targets
expose explicit timestamps on a virtual clock (honor_timestamps: true), so
both hold exactly the same samples; the virtual clock runs up to 15x faster
than real time, so an hour of 15 s history accumulates in four to five
minutes, and it waits for a system that falls behind.
Then both answer the same queries, alternately, and the script compares
latency (client-measured) and checks the results are identical.

Queries (from the PromQL issue):
  A  instant  sum by (job) (rate(x[5m]))      over 100k series (100 targets x 1000)
  B  range    sum by (job) (rate(y[5m]))      1 h at 15 s step over 10k series
  C  range    rate(y[5m])                     1 h at 15 s step over 10k series

Evaluation times sit half a step off the sample grid, so Prometheus 2.42's
closed range selectors and watchpost's left-open ones (Prometheus 3.x
semantics) select the same samples.

Usage (from the repository root; needs Debian's prometheus package):
  cargo build --release
  python3 benches/query_compare.py [--reps 10] [--prometheus prometheus]
Bounded: the targets stop after --max-runtime seconds (default 900), every
process started here is killed on exit.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

STEP = 15            # virtual seconds between samples
SPEED = 15           # virtual seconds per real second (at most; see Targets.vstep)
HISTORY = 3900       # virtual seconds of history to build (1h + 5m)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Targets:
    """K_A targets of M_A series of counter x, and K_B of M_B series of y."""

    def __init__(self, groups, t0, max_runtime):
        self.groups = groups          # list of (metric, k, m)
        self.t0 = t0                  # virtual start (unix seconds, multiple of STEP)
        self.real0 = None             # the virtual clock starts when both systems scrape
        self.max_runtime = max_runtime
        self.ports = []
        self.templates = {}
        self.cache = {}
        self.step = 0
        self.served = {}              # (port, user agent) -> times it got the current step
        self.stored = -1              # newest step both systems are known to hold

    def start_clock(self):
        self.real0 = time.time()

    def vstep(self):
        """The current virtual step. It advances with real time, but only
        once both systems hold the current step (see verify_steps): a
        system that falls behind under load holds the clock instead of
        missing a sample, so both store the same data. Repeated scrapes of
        a step are harmless duplicates (same timestamp, same value)."""
        if self.real0 is None:
            return 0
        due = min(int((time.time() - self.real0) * SPEED // STEP), HISTORY // STEP)
        if due > self.step and self.stored >= self.step:
            self.step += 1
            self.served = {}
        return self.step

    def all_served(self):
        return len(self.served) >= 2 * len(self.templates) and min(self.served.values()) >= 2

    def body(self, port):
        metric, base, m = self.templates[port]
        n = self.vstep()
        cached = self.cache.get(port)
        if cached and cached[0] == n:
            return cached[1]
        ts = (self.t0 + n * STEP) * 1000
        # value = n * (1 + i % 7): integer counters with varied rates
        lines = ["# TYPE %s counter\n" % metric]
        for i in range(m):
            lines.append('%s{job="job-%d",series="%d"} %d %d\n' % (metric, (base + i) % 10, base + i, n * (1 + i % 7), ts))
        data = "".join(lines).encode()
        self.cache[port] = (n, data)
        return data

    async def handle(self, reader, writer, port):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                ua = b""
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    if h[:11].lower() == b"user-agent:":
                        ua = h[11:].strip().split(b"/")[0].lower()
                body = self.body(port)
                if self.real0 is not None:
                    self.served[(port, ua)] = self.served.get((port, ua), 0) + 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n" % len(body))
                writer.write(body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def serve(self, ready):
        servers = []
        for metric, k, m in self.groups:
            for j in range(k):
                port = free_port()
                self.templates[port] = (metric, j * m, m)
                srv = await asyncio.start_server(lambda r, w, p=port: self.handle(r, w, p), "127.0.0.1", port)
                servers.append(srv)
                self.ports.append((metric, port))
        ready.set()
        await asyncio.sleep(self.max_runtime)
        for s in servers:
            s.close()


def write_config(path, targets, interval):
    jobs = {}
    for metric, port in targets:
        jobs.setdefault(metric, []).append("127.0.0.1:%d" % port)
    out = ["global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n" % (interval, interval)]
    for metric, addrs in jobs.items():
        out.append("  - job_name: %s\n    honor_labels: true\n    honor_timestamps: true\n    static_configs:\n      - targets: [%s]\n"
                   % (metric, ", ".join('"%s"' % a for a in addrs)))
    with open(path, "w") as f:
        f.write("".join(out))


def wait_ready(url, proc, limit=60):
    for _ in range(limit * 10):
        if proc.poll() is not None:
            raise SystemExit("process exited early: %s" % url)
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit("not ready: " + url)


def query(base, path, params):
    url = base + path + "?" + urllib.parse.urlencode(params)
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as r:
        data = r.read()
    dt = time.perf_counter() - t
    return dt, json.loads(data)


def canonical(resp):
    d = resp["data"]
    out = []
    for s in d["result"]:
        pts = s.get("values") or [s["value"]]
        out.append((json.dumps(s["metric"], sort_keys=True), [(round(float(p[0]), 3), float(p[1])) for p in pts]))
    out.sort()
    return d["resultType"], out


def same_results(a, b):
    """Equal series and timestamps, values equal up to float rounding: the
    two engines add in different orders (Prometheus 2.42 sums naively,
    watchpost with Kahan compensation like Prometheus 3.x)."""
    if a[0] != b[0] or len(a[1]) != len(b[1]):
        return False, "different shape"
    for (ma, pa), (mb, pb) in zip(a[1], b[1]):
        if ma != mb or len(pa) != len(pb):
            return False, "series %s vs %s, %d vs %d points" % (ma, mb, len(pa), len(pb))
        for (ta, va), (tb, vb) in zip(pa, pb):
            if ta != tb or not (va == vb or abs(va - vb) <= 1e-9 * max(abs(va), abs(vb))):
                return False, "%s at %s: %r vs %r" % (ma, ta, va, vb)
    return True, ""


def wait_counts(systems, promql, at, want, tries):
    """Polls `promql` (a count) at time `at` on every system every 0.5 s
    until all answer `want`; returns None then, or the last counts."""
    counts = []
    for _ in range(tries):
        counts = []
        for base in systems.values():
            try:
                _, r = query(base, "/api/v1/query", {"query": promql, "time": "%d" % at})
                counts.append(float(r["data"]["result"][0]["value"][1]) if r["data"]["result"] else 0)
            except Exception:
                counts.append(0)
        if all(c == want for c in counts):
            return None
        time.sleep(0.5)
    return counts


def verify_steps(tg, systems, series):
    """Marks each step stored once both systems answer with every series'
    sample of that step. Scrapes time out under this load (Prometheus's
    scrape_timeout equals the interval), and a timed-out scrape loses its
    step even though the target answered, so a served step is not a stored
    one: the clock only moves past a step both systems hold."""
    promql = 'count(count_over_time({__name__=~"x|y"}[1s]))'
    while True:
        step = tg.step
        if tg.real0 is None or tg.stored >= step or not tg.all_served():
            time.sleep(0.05)
            continue
        at = "%.1f" % (tg.t0 + step * STEP + 0.5)
        ok = True
        for base in systems.values():
            try:
                _, r = query(base, "/api/v1/query", {"query": promql, "time": at})
                res = r["data"]["result"]
                ok = ok and bool(res) and float(res[0]["value"][1]) == series
            except Exception:
                ok = False
        if ok:
            tg.stored = step
        else:
            time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--prometheus", default="prometheus")
    ap.add_argument("--watchpost", default="target/release/watchpost")
    ap.add_argument("--interval", default="500ms", help="scrape interval of both systems")
    ap.add_argument("--max-runtime", type=float, default=1200)
    ap.add_argument("--hold", type=float, default=0, help="keep both systems running this many seconds afterwards (for profiling)")
    a = ap.parse_args()
    if not shutil.which(a.prometheus):
        raise SystemExit("prometheus not found (apt-get install prometheus)")
    now = int(time.time())
    # Prometheus refuses samples more than an hour older than the newest it
    # holds (and its own `up` series are stamped with the wall clock), so the
    # virtual history starts 50 minutes ago and ends in the near future.
    t0 = (now - 3000) // STEP * STEP
    tg = Targets([("x", 100, 1000), ("y", 10, 1000)], t0, a.max_runtime)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    threading.Thread(target=lambda: loop.run_until_complete(tg.serve(ready)), daemon=True).start()
    ready.wait()

    tmp = tempfile.mkdtemp(prefix="wp-querycmp-")
    procs = []

    def cleanup(*_):
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda *x: (cleanup(), sys.exit(1)))
    try:
        cfg = os.path.join(tmp, "scrape.yml")
        write_config(cfg, tg.ports, a.interval)
        pp, wp = free_port(), free_port()
        procs.append(subprocess.Popen([a.prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "prom"),
                                       "--web.listen-address=127.0.0.1:%d" % pp], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "w")))
        procs.append(subprocess.Popen([a.watchpost, "run", "--config.file=" + cfg, "--storage.path=" + os.path.join(tmp, "wp"),
                                       "--web.listen-address=127.0.0.1:%d" % wp], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "wp.log"), "w")))
        systems = {"prometheus": "http://127.0.0.1:%d" % pp, "watchpost": "http://127.0.0.1:%d" % wp}
        wait_ready(systems["prometheus"] + "/-/ready", procs[0])
        wait_ready(systems["watchpost"] + "/-/ready", procs[1])
        # Both scrape step 0 until each has every target (Prometheus applies
        # discovery results after a few seconds); only then time moves, so
        # both hold the same samples from the first step on.
        counts = wait_counts(systems, "count(x) + count(y)", t0 + 1, 110000, 600)
        if counts:
            raise SystemExit("systems did not ingest all series: %s" % counts)
        time.sleep(2)
        threading.Thread(target=verify_steps, args=(tg, systems, 110000), daemon=True).start()
        tg.start_clock()
        print("building %d virtual seconds of history: at least %.0f s real" % (HISTORY, HISTORY / SPEED), flush=True)
        for _ in range(int(a.max_runtime)):
            if tg.step >= HISTORY // STEP:
                break
            time.sleep(1)
        else:
            raise SystemExit("history not built within --max-runtime")
        for _ in range(120):   # both store the final step
            if tg.stored >= HISTORY // STEP:
                break
            time.sleep(0.5)
        end_v = t0 + (HISTORY // STEP) * STEP
        t_eval = end_v - STEP / 2
        # A scrape request seen by the target is not yet a stored sample:
        # wait until both systems answer with every series' final sample.
        fresh = 'count(timestamp({__name__=~"x|y"}) >= %d)' % end_v
        counts = wait_counts(systems, fresh, end_v, 110000, 120)
        if counts:
            print("warning: not every final sample stored: %s" % counts, flush=True)
        queries = [
            ("A instant sum by (job) (rate(x[5m])) over 100k series", "/api/v1/query",
             {"query": "sum by (job) (rate(x[5m]))", "time": "%.3f" % t_eval}),
            ("B range 1h/15s sum by (job) (rate(y[5m])) over 10k series", "/api/v1/query_range",
             {"query": "sum by (job) (rate(y[5m]))", "start": "%.3f" % (t_eval - 3600), "end": "%.3f" % t_eval, "step": "15"}),
            ("C range 1h/15s rate(y[5m]) over 10k series", "/api/v1/query_range",
             {"query": "rate(y[5m])", "start": "%.3f" % (t_eval - 3600), "end": "%.3f" % t_eval, "step": "15"}),
        ]
        # Both must hold the same samples: compare raw series counts first.
        for name, base in systems.items():
            _, r = query(base, "/api/v1/query", {"query": "count(x) + count(y)", "time": "%.3f" % t_eval})
            print("%s holds %s series at the evaluation time" % (name, r["data"]["result"][0]["value"][1]))
        results = []
        for label, path, params in queries:
            lat = {"prometheus": [], "watchpost": []}
            answers = {}
            for rep in range(a.reps + 1):
                order = ["prometheus", "watchpost"] if rep % 2 == 0 else ["watchpost", "prometheus"]
                for name in order:
                    dt, resp = query(systems[name], path, params)
                    if resp.get("status") != "success":
                        raise SystemExit("%s failed %s: %s" % (name, label, resp))
                    if rep > 0:   # the first round warms caches
                        lat[name].append(dt)
                    answers[name] = canonical(resp)
            same, why = same_results(answers["prometheus"], answers["watchpost"])
            mp, mw = statistics.median(lat["prometheus"]), statistics.median(lat["watchpost"])
            results.append((label, mp, mw, same, len(answers["watchpost"][1])))
            if not same:
                print("  results differ for %s: %s" % (label, why))
        print()
        print("%-62s %12s %12s %8s %10s" % ("query", "prometheus", "watchpost", "ratio", "identical"))
        for label, mp, mw, same, n in results:
            print("%-62s %10.1fms %10.1fms %8.2f %10s" % (label, mp * 1000, mw * 1000, mw / mp, "yes (%d)" % n if same else "NO"))
        print("(median of %d alternating runs each; ratio = watchpost / prometheus; budget <= 0.5;"
              " identical = same series, timestamps and values within 1e-9 relative)" % a.reps)
        if a.hold:
            print("holding: prometheus %s, watchpost %s, evaluation time %.3f" % (systems["prometheus"], systems["watchpost"], t_eval), flush=True)
            time.sleep(a.hold)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
