#!/usr/bin/python3
"""bench/scale.py: the seeds' scaling study (Table II, Figure 9) through a real Tessera grid.

One run, on 127.0.0.1, everything it starts stopped at the end (also on errors and ^C):

1. a tessera-server in a temp dir, and up to --procs-max tessera-client nodes (--threads 1 each);
2. for p = 1..P client processes: the same montecarlo_pi job (--samples, seed 1, --units fixed
   units), timed from just before POST /api/v1/jobs to the poll (every 10 ms) that sees it done;
   the clients are started right after the POST (an idle client polls only every 2 s) and
   stopped after; the result's hits are checked against bench_bare's exact count;
3. the seeds' original stack for comparison: a Python mpi4py Monte Carlo Pi (random.random(),
   each rank draws its share, rank 0 reduces with comm.reduce) under mpirun -np p
   (--oversubscribe, --bind-to none), with --py-samples samples (Python is ~100x slower);
4. end-to-end efficiency: a job of --e2e-units units of >= 2 s each through 2 clients (threads 1
   each) vs bench_bare (kern_run) over the same samples on 2 threads;
5. prints the tables (text and Markdown) and writes an SVG plot (time and speedup against
   processes) to --svg (docs/scale.svg).

Usage: bench/scale.py [--build DIR] [--samples 4e9] [--units 48] [--procs-max 4]
                      [--py-samples 4e7] [--e2e-units 8] [--e2e-unit-s 2.5]
                      [--svg docs/scale.svg] [--json FILE] [--skip-mpi] [--skip-e2e]
                      [--e2e-repeat 1] [--e2e-warm]   (nodes up and idle before the POST, as on a running grid)
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
PASSWORD = "scale-admin-password"

MPI_PI = r'''
import json, random, sys
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
n, seed = int(sys.argv[1]), int(sys.argv[2])
share = n // size + (1 if rank < n % size else 0)
random.seed(seed * 1000003 + rank)
comm.Barrier()
t0 = MPI.Wtime()
hits = 0
rnd = random.random
for _ in range(share):
    x = rnd()
    y = rnd()
    if x * x + y * y < 1.0:
        hits += 1
total = comm.reduce(hits, op=MPI.SUM, root=0)
if rank == 0:
    t = MPI.Wtime() - t0
    print(json.dumps({"samples": n, "hits": total, "pi": 4.0 * total / n, "compute_s": t,
                      "ranks": size}))
'''


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_count(s):
    return int(float(s)) if "e" in s.lower() else int(s)


class Api:
    """Keep-alive HTTPS to our own server; the certificate must be the one in its data dir."""

    def __init__(self, port, cert_der):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # trust is the pinned certificate below
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        self.der = cert_der
        self.token = None

    def call(self, method, path, body=None, want=200):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                if self.conn.sock.getpeercert(binary_form=True) != self.der:
                    raise RuntimeError("server certificate does not match the pin")
                r = self.conn.getresponse()
                text = r.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                if attempt == 2:
                    raise
                time.sleep(0.05)
        if r.status != want:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {text[:300]!r}")
        return json.loads(text) if text else None


class Grid:
    def __init__(self, build, tmp):
        self.build, self.tmp = build, tmp
        self.data = os.path.join(tmp, "data")
        self.server = None
        self.clients = []
        self.env = dict(os.environ, TESSERA_ADMIN_PASSWORD=PASSWORD)
        self.poll_s = 0.01  # how often run_job asks whether the job is done

    def bin(self, name):
        return os.path.join(self.build, name)

    def start(self):
        subprocess.run([self.bin("tessera-server"), "init", "--data", self.data], env=self.env,
                       check=True, capture_output=True, timeout=60)
        self.pin = subprocess.run([self.bin("tessera-server"), "pin", "--data", self.data],
                                  check=True, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        self.slog = open(os.path.join(self.tmp, "server.log"), "w")
        self.server = subprocess.Popen(
            [self.bin("tessera-server"), "run", "--data", self.data, "--listen", "127.0.0.1:0",
             "--rate-limit", "0", "--login-rate", "0", "--quiet"],
            stdout=self.slog, stderr=subprocess.STDOUT)
        portfile = os.path.join(self.data, "server.port")
        end = time.monotonic() + 20
        while not os.path.exists(portfile) or not open(portfile).read().strip():
            if self.server.poll() is not None or time.monotonic() > end:
                raise RuntimeError("tessera-server did not start (see server.log)")
            time.sleep(0.02)
        self.port = int(open(portfile).read())
        self.url = f"https://127.0.0.1:{self.port}"
        with open(os.path.join(self.data, "server.crt")) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.api = Api(self.port, der)
        self.api.token = self.api.call("POST", "/api/v1/login",
                                       {"username": "admin", "password": PASSWORD})["token"]

    def enroll(self, n):
        tok = self.api.call("POST", "/api/v1/enroll-tokens", {"uses": n, "ttl_s": 3600},
                            want=201)["token"]
        self.states = []
        for i in range(n):
            st = os.path.join(self.tmp, f"node{i + 1}")
            subprocess.run([self.bin("tessera-client"), "enroll", self.url, tok, "--state", st,
                            "--name", f"scale-{i + 1}", "--threads", "1", "--no-bench"],
                           check=True, capture_output=True, timeout=60)
            self.states.append(st)

    def start_clients(self, p):
        for i in range(p):
            with open(os.path.join(self.tmp, f"client{i + 1}.log"), "a") as lf:
                self.clients.append(subprocess.Popen(
                    [self.bin("tessera-client"), "run", "--state", self.states[i], "--threads", "1",
                     "--no-bench", "--max-units", "1", "--quiet"], stdout=lf, stderr=subprocess.STDOUT))

    def stop_clients(self):
        for c in self.clients:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in self.clients:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()
                c.wait()
        self.clients = []

    def wait_idle(self, p, timeout=30):
        """Until p nodes have sent a heartbeat since their start and sit in a waiting fetch:
        a grid that is up before the job, as a user's is."""
        t0, since = time.monotonic(), int(time.time())
        while time.monotonic() - t0 < timeout:
            nodes = self.api.call("GET", "/api/v1/nodes")
            nodes = nodes.get("nodes", nodes) if isinstance(nodes, dict) else nodes
            if sum(1 for n in nodes if n.get("last_seen", 0) > since) >= p:
                time.sleep(1.0)  # their first fetch is on the wire and waiting
                return
            time.sleep(0.05)
        raise RuntimeError(f"{p} nodes not online after {timeout} s")

    def run_job(self, p, samples, units, seed, timeout=900, warm=False):
        """Submits, starts p clients (before the POST when warm), waits for done; returns
        (seconds, job)."""
        body = {"kernel": "montecarlo_pi", "params": {"samples": samples, "seed": seed},
                "units": units, "deadline_s": 3600}
        if warm:
            self.start_clients(p)
            self.wait_idle(p)
        t0 = time.monotonic()
        job = self.api.call("POST", "/api/v1/jobs", body, want=201)
        try:
            if not warm:
                self.start_clients(p)
            path = f"/api/v1/jobs/{job['id']}"
            while True:
                j = self.api.call("GET", path)
                if j["state"] not in ("queued", "running"):
                    t = time.monotonic() - t0
                    break
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError(f"job {job['id']} not done in {timeout} s")
                time.sleep(self.poll_s)
        finally:
            self.stop_clients()
        if j["state"] != "done":
            raise RuntimeError(f"job {job['id']} ended {j['state']}: {j.get('error')}")
        return t, j

    def stop(self):
        self.stop_clients()
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if getattr(self, "slog", None):
            self.slog.close()


def bare(build, samples, seed, threads, repeat=1):
    out = subprocess.run([os.path.join(build, "bench", "bench_bare"), "--samples", str(samples),
                          "--seed", str(seed), "--threads", str(threads), "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True, timeout=900).stdout
    return json.loads(out)


def mpi_run(script, p, samples, seed):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(p), "/usr/bin/python3",
           script, str(samples), str(seed)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"mpirun -np {p} failed: {r.stderr[-800:]}")
    line = [l for l in r.stdout.splitlines() if l.startswith("{")][-1]
    res = json.loads(line)
    res["wall_s"] = wall
    return res


def karp_flatt(s, p):
    return (1.0 / s - 1.0 / p) / (1.0 - 1.0 / p) if p > 1 else None


def svg_plot(rows, py_rows, path, cores, title):
    """Two panels: time (ms) against processes, and speedup against processes."""
    W, H, pad = 900, 380, 60
    pw = (W - 3 * pad) / 2
    ph = H - 2 * pad
    ps = [r["p"] for r in rows]
    pmax = max(ps)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>']

    def nice(v):
        """The smallest 1/2/2.5/5 x 10^k at or above v/5: a tick step."""
        import math
        raw = v / 5
        k = 10 ** math.floor(math.log10(raw))
        for m in (1, 2, 2.5, 5, 10):
            if m * k >= raw:
                return m * k

    def panel(x0, ymax, series, ylabel, yfmt, extra=None, legend_left=False):
        step = nice(ymax)
        ymax = step * 5

        def X(p):
            return x0 + (p - 0.5) / (pmax) * pw

        def Y(v):
            return pad + ph - v / ymax * ph
        out.append(f'<rect x="{x0}" y="{pad}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        for k in range(6):
            v = step * k
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{x0 - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{yfmt(v)}</text>')
        for p in ps:
            out.append(f'<text x="{X(p):.1f}" y="{pad + ph + 16}" text-anchor="middle">{p}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{pad + ph + 34}" text-anchor="middle">'
                   f'client processes (threads 1 each; {cores} cores)</text>')
        out.append(f'<text transform="translate({x0 - 44},{pad + ph / 2}) rotate(-90)" '
                   f'text-anchor="middle">{ylabel}</text>')
        if extra:
            extra(X, Y)
        ly = pad + 14
        lx = x0 + 160 if legend_left else x0 + pw
        for name, color, pts, dash in series:
            d = " ".join(f"{'M' if i == 0 else 'L'}{X(p):.1f},{Y(v):.1f}"
                         for i, (p, v) in enumerate(pts))
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            for p, v in pts:
                out.append(f'<circle cx="{X(p):.1f}" cy="{Y(v):.1f}" r="3.5" fill="{color}"/>')
            out.append(f'<line x1="{lx - 150}" x2="{lx - 130}" y1="{ly - 4}" y2="{ly - 4}" '
                       f'stroke="{color}" stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
            out.append(f'<text x="{lx - 125}" y="{ly}">{name}</text>')
            ly += 16

    tmax = max(r["ms"] for r in rows) * 1.05
    panel(pad, tmax, [("Tessera", "#1f6fb2", [(r["p"], r["ms"]) for r in rows], None)],
          "time to done (ms)", lambda v: f"{v:.0f}")
    smax = max([pmax] + [r["speedup"] for r in rows] + [r["speedup"] for r in py_rows]) * 1.05
    series = [("Tessera", "#1f6fb2", [(r["p"], r["speedup"]) for r in rows], None)]
    if py_rows:
        series.append(("mpi4py (seeds)", "#d2691e", [(r["p"], r["speedup"]) for r in py_rows], None))
    series.append(("ideal", "#888", [(p, float(p)) for p in ps], "4 4"))

    def ceiling(X, Y):
        y = Y(cores)
        out.append(f'<line x1="{X(0.5):.1f}" x2="{X(pmax + 0.5):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#c33" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{X(pmax + 0.5) - 4:.1f}" y="{y + 14:.1f}" text-anchor="end" '
                   f'fill="#c33">{cores} cores</text>')
    panel(2 * pad + pw, smax, series, "speedup T(1)/T(p)", lambda v: f"{v:g}", ceiling, legend_left=True)
    out.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--samples", default="4e9")
    ap.add_argument("--units", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--procs-max", type=int, default=0, help="default: twice the cores")
    ap.add_argument("--py-samples", default="4e7")
    ap.add_argument("--e2e-units", type=int, default=8)
    ap.add_argument("--e2e-unit-s", type=float, default=2.5, help="target seconds per unit")
    ap.add_argument("--svg", default=os.path.join(ROOT, "docs", "scale.svg"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-mpi", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--poll-ms", type=float, default=10,
                    help="how often the job is polled (each poll costs the server and this program CPU "
                         "that the nodes then lack; the bare kernel pays none)")
    ap.add_argument("--e2e-repeat", type=int, default=1, help="bare/grid pairs; the median is the figure")
    ap.add_argument("--e2e-warm", action="store_true",
                    help="start the 2 nodes before the POST and wait until they are idle")
    ap.add_argument("--skip-scale", action="store_true")
    a = ap.parse_args()
    samples, py_samples = parse_count(a.samples), parse_count(a.py_samples)
    cores = os.cpu_count() or 1
    pmax = a.procs_max or 2 * cores
    report = {"cores": cores, "loadavg_before": open("/proc/loadavg").read().strip(),
              "samples": samples, "units": a.units, "seed": a.seed}
    tmp = tempfile.mkdtemp(prefix="tessera-scale-")
    grid = Grid(a.build, tmp)
    grid.poll_s = a.poll_ms / 1000.0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    rows, py_rows = [], []
    try:
        grid.start()
        grid.enroll(max(pmax, 2))
        log(f"server {grid.url}, {max(pmax, 2)} nodes enrolled; {cores} cores; "
            f"load average {report['loadavg_before']}")
        if not a.skip_scale:
            ref = bare(a.build, samples, a.seed, cores)
            report["bare"] = ref
            log(f"bare kernel, {cores} threads: {samples:.3g} samples in {ref['wall_s'] * 1e3:.0f} ms, "
                f"hits {ref['hits']} (path {ref['path']})")
            for p in range(1, pmax + 1):
                t, job = grid.run_job(p, samples, a.units, a.seed)
                hits = job["result"]["hits"]
                if hits != ref["hits"]:
                    raise RuntimeError(f"p={p}: job hits {hits} != exact {ref['hits']}")
                rows.append({"p": p, "ms": t * 1e3, "hits": hits})
                log(f"tessera p={p}: {t * 1e3:.0f} ms (hits exact)")
            for r in rows:
                r["speedup"] = rows[0]["ms"] / r["ms"]
                r["efficiency"] = r["speedup"] / r["p"]
                r["karp_flatt"] = karp_flatt(r["speedup"], r["p"])
                r["rate"] = samples / (r["ms"] / 1e3)
        if not a.skip_mpi and rows:
            script = os.path.join(tmp, "mpi_pi.py")
            with open(script, "w") as f:
                f.write(MPI_PI)
            for p in range(1, pmax + 1):
                res = mpi_run(script, p, py_samples, a.seed)
                py_rows.append({"p": p, "ms": res["wall_s"] * 1e3, "compute_ms": res["compute_s"] * 1e3,
                                "pi": res["pi"]})
                log(f"mpi4py p={p}: {res['wall_s'] * 1e3:.0f} ms (compute {res['compute_s'] * 1e3:.0f} ms)")
            for r in py_rows:
                r["speedup"] = py_rows[0]["ms"] / r["ms"]
                r["efficiency"] = r["speedup"] / r["p"]
                r["karp_flatt"] = karp_flatt(r["speedup"], r["p"])
                r["rate"] = py_samples / (r["ms"] / 1e3)
            for r, q in zip(rows, py_rows):
                r["ratio"] = r["rate"] / q["rate"]
        if not a.skip_e2e:
            one = bare(a.build, 200_000_000, a.seed, 1)
            unit = int(one["rate"] * a.e2e_unit_s / 1e6) * 1_000_000
            total = unit * a.e2e_units
            # Bare and grid alternate, one pair per repeat: on a shared machine the bare kernel
            # itself varies by 10% and more between runs, so each grid run is set against the
            # bare run just before it, and the median pair is the figure.
            pairs = []
            for r in range(a.e2e_repeat):
                b2 = bare(a.build, total, a.seed + 1, 2)
                t, job = grid.run_job(2, total, a.e2e_units, a.seed + 1, warm=a.e2e_warm)
                if job["result"]["hits"] != b2["hits"]:
                    raise RuntimeError("e2e job hits differ from the bare kernel's")
                pairs.append({"bare_2t_s": b2["wall_s"], "e2e_s": t, "efficiency": b2["wall_s"] / t,
                              "compute_s": job.get("compute_s")})
                log(f"e2e {r + 1}/{a.e2e_repeat}: {total:.3g} samples in {a.e2e_units} units: grid "
                    f"{t:.3f} s, bare 2 threads {b2['wall_s']:.3f} s -> {b2['wall_s'] / t * 100:.1f}%")
            med = sorted(pairs, key=lambda q: q["efficiency"])[len(pairs) // 2]
            e = dict(med, units=a.e2e_units, unit_samples=unit, samples=total,
                     single_thread_rate=one["rate"], pairs=pairs,
                     overhead_us_per_unit=(med["e2e_s"] - med["bare_2t_s"]) / a.e2e_units * 1e6,
                     unit_s_est=unit / one["rate"])
            report["e2e"] = e
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        grid.stop()
        report["loadavg_after"] = open("/proc/loadavg").read().strip()
        shutil.rmtree(tmp, ignore_errors=True)

    # The tables.
    print(f"machine: {cores} cores (shared); load average before: {report['loadavg_before']}; "
          f"after: {report['loadavg_after']}")
    if rows:
        print(f"\nTessera: montecarlo_pi {samples:.3g} samples, seed {a.seed}, {a.units} units; "
              f"clients --threads 1 --max-units 1; submission to done")
        print("| processes | time (ms) | speedup | efficiency | Karp–Flatt e | samples/s |"
              + (" mpi4py time (ms) | mpi4py compute (ms) | mpi4py speedup | rate ratio Tessera/mpi4py |" if py_rows else ""))
        print("|---|---|---|---|---|---|" + ("---|---|---|---|" if py_rows else ""))
        for i, r in enumerate(rows):
            kf = "–" if r["karp_flatt"] is None else f"{r['karp_flatt']:.3f}"
            line = (f"| {r['p']} | {r['ms']:.0f} | {r['speedup']:.2f} | {r['efficiency'] * 100:.0f}% | {kf} | "
                    f"{r['rate']:.3g} |")
            if py_rows:
                q = py_rows[i]
                line += f" {q['ms']:.0f} | {q['compute_ms']:.0f} | {q['speedup']:.2f} | {r['ratio']:.0f}× |"
            print(line)
        if py_rows:
            print(f"\nmpi4py: {py_samples:.3g} samples (random.random(), rank 0 reduces), "
                  f"mpirun --oversubscribe --bind-to none; time = mpirun wall (launch included)")
            print("| processes | time (ms) | speedup | efficiency | Karp–Flatt e | samples/s |")
            print("|---|---|---|---|---|---|")
            for q in py_rows:
                kf = "–" if q["karp_flatt"] is None else f"{q['karp_flatt']:.3f}"
                print(f"| {q['p']} | {q['ms']:.0f} | {q['speedup']:.2f} | {q['efficiency'] * 100:.0f}% | {kf} | "
                      f"{q['rate']:.3g} |")
        svg_plot(rows, py_rows, a.svg, cores,
                 f"Monte Carlo Pi on {cores} cores: Tessera ({samples:.2g} samples, {a.units} units)"
                 + (f" and mpi4py ({py_samples:.2g} samples)" if py_rows else ""))
        print(f"\nplot: {a.svg}")
    if "e2e" in report:
        e = report["e2e"]
        print(f"\nend-to-end: {e['samples']:.4g} samples in {e['units']} units of {e['unit_samples']:.3g} "
              f"(~{e['unit_s_est']:.2f} s each on one thread), 2 clients --threads 1, "
              + ("started and idle before the POST" if a.e2e_warm else "started after the POST"))
        print(f"| pair | bare kern_run, 2 threads (s) | grid, submission to done (s) | efficiency |")
        print("|---|---|---|---|")
        for i, q in enumerate(e["pairs"]):
            print(f"| {i + 1} | {q['bare_2t_s']:.3f} | {q['e2e_s']:.3f} | {q['efficiency'] * 100:.1f}% |")
        print(f"median pair: efficiency {e['efficiency'] * 100:.1f}%, overhead "
              f"{e['overhead_us_per_unit']:.0f} µs per unit")
    report["tessera"] = rows
    report["mpi4py"] = py_rows
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
