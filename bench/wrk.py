#!/usr/bin/python3
"""bench/wrk.py: server throughput measured by an independent generator, Debian's wrk.

Starts a real tessera-server on 127.0.0.1 in a temp dir pinned to CPU 0 (taskset), enrolls N
nodes through the API, submits a montecarlo_pi job of --job-units units of --unit-size samples,
and runs `wrk -t N -c N` (one connection per node) pinned to CPU 1 with bench/wrk/work.lua for
--seconds. Prints units/s (from the job's units_done before and after, read from the server),
the server's CPU over the run (/proc/PID/stat), units per server CPU-second, and wrk's own
latency distribution. The reported results are not computed (see work.lua).

Usage: bench/wrk.py [--build build] [--connections 256] [--batch 1] [--seconds 15]
                    [--report-fetch] [--unit-size 1000] [--job-units 1000000]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "wrk-bench-admin-password"


def api(port, ctx, method, path, body=None, token=None, want=200):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    if r.status != want:
        raise RuntimeError(f"{method} {path}: HTTP {r.status}: {text[:300]}")
    return json.loads(text) if text else None


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--report-fetch", action="store_true", help="each report carries the next fetch")
    ap.add_argument("--unit-size", type=int, default=1000)
    ap.add_argument("--job-units", type=int, default=1000000)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk: not installed (Debian's wrk; scripts/deps.sh installs it)", file=sys.stderr)
        return 3
    n = a.connections
    tmp = tempfile.mkdtemp(prefix="tessera-wrk-")
    data = os.path.join(tmp, "data")
    env = dict(os.environ, TESSERA_ADMIN_PASSWORD=PASSWORD)
    srv = None
    la0 = open("/proc/loadavg").read().strip()
    try:
        subprocess.run([os.path.join(a.build, "tessera-server"), "init", "--data", data], env=env,
                       check=True, capture_output=True, timeout=60)
        log = open(os.path.join(tmp, "server.log"), "w")
        srv = subprocess.Popen(["taskset", "-c", "0", os.path.join(a.build, "tessera-server"), "run",
                                "--data", data, "--listen", "127.0.0.1:0", "--rate-limit", "0",
                                "--login-rate", "0", "--max-connections-per-address", "100000",
                                "--max-connections", str(n + 64), "--quiet"],
                               stdout=log, stderr=subprocess.STDOUT)
        portfile = os.path.join(data, "server.port")
        end = time.monotonic() + 20
        while not os.path.exists(portfile) or not open(portfile).read().strip():
            if srv.poll() is not None or time.monotonic() > end:
                raise RuntimeError("tessera-server did not start")
            time.sleep(0.02)
        port = int(open(portfile).read())
        ctx = ssl.create_default_context(cafile=os.path.join(data, "server.crt"))
        ctx.check_hostname = False
        admin = api(port, ctx, "POST", "/api/v1/login", {"username": "admin", "password": PASSWORD})["token"]
        tok = api(port, ctx, "POST", "/api/v1/enroll-tokens", {"uses": n, "ttl_s": 3600}, admin, 201)["token"]
        tokens = []
        for i in range(n):
            r = api(port, ctx, "POST", "/api/v1/nodes/enroll",
                    {"token": tok, "name": f"wrk-{i}", "platform": "x86_64", "cores": 1}, want=201)
            tokens.append(r["node_token"] if "node_token" in r else r["token"])
        tfile = os.path.join(tmp, "tokens")
        open(tfile, "w").write("\n".join(tokens) + "\n")
        job = api(port, ctx, "POST", "/api/v1/jobs",
                  {"kernel": "montecarlo_pi", "units": a.job_units,
                   "params": {"samples": a.job_units * a.unit_size, "seed": 1}}, admin, 201)["id"]

        def done():
            return api(port, ctx, "GET", f"/api/v1/jobs/{job}", token=admin)["units"]["done"]
        wenv = dict(os.environ, WRK_TOKENS=tfile, WRK_BATCH=str(a.batch),
                    REPORT_FETCH="1" if a.report_fetch else "0")
        # A short warm-up run of wrk, then the measured one.
        subprocess.run(["taskset", "-c", "1", "wrk", "-t", str(n), "-c", str(n), "-d", "3s", "-s",
                        os.path.join(ROOT, "bench", "wrk", "work.lua"), f"https://127.0.0.1:{port}"],
                       env=wenv, capture_output=True, timeout=120)
        u0, c0, t0 = done(), cpu_s(srv.pid), time.monotonic()
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t", str(n), "-c", str(n), "-d",
                              f"{a.seconds:g}s", "--latency", "-s",
                              os.path.join(ROOT, "bench", "wrk", "work.lua"), f"https://127.0.0.1:{port}"],
                             env=wenv, capture_output=True, text=True, timeout=a.seconds + 120).stdout
        t1, c1, u1 = time.monotonic(), cpu_s(srv.pid), done()
        units = u1 - u0
        dt, cpu = t1 - t0, c1 - c0
        print(out.rstrip())
        print(f"\nload average before: {la0}; after: {open('/proc/loadavg').read().strip()}")
        print(f"wrk -t {n} -c {n}, batch {a.batch}, {'report + fetch per request' if a.report_fetch else 'fetch, then report'}; "
              f"server on CPU 0, wrk on CPU 1")
        print(f"units completed: {units} in {dt:.1f} s = {units / dt:.0f} units/s")
        print(f"server CPU: {cpu:.2f} s = {cpu / dt * 100:.0f}% of its core; "
              f"units per server CPU-second: {units / cpu:.0f}" if cpu > 0 else "server CPU: 0")
    finally:
        if srv and srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
