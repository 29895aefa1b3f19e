#!/usr/bin/python3
"""bench/plot_rss.py: the server's RSS against finished units, from `bench_load --json --rss-every S`.

Usage: bench/plot_rss.py RESULT.json OUT.svg
Writes a plain SVG (no plotting library): RSS (MiB) and units accepted against time.
"""
import json
import math
import sys


def nice(v):
    raw = max(v, 1e-9) / 5
    k = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * k >= raw:
            return m * k


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    r = json.load(open(sys.argv[1]))
    pts = r.get("rss_series") or []
    if len(pts) < 2:
        print("no rss_series in the result (run bench_load with --rss-every S)", file=sys.stderr)
        return 1
    W, H, pad = 760, 360, 70
    pw, ph = W - 2 * pad, H - 2 * pad
    tmax = max(p["t_s"] for p in pts)
    rmax = nice(max(p["rss_kb"] for p in pts) / 1024 * 1.05) * 5
    umax = nice(max(p["accepted"] for p in pts) * 1.05) * 5

    def X(t):
        return pad + t / tmax * pw

    def Yr(v):
        return pad + ph - v / rmax * ph

    def Yu(v):
        return pad + ph - v / umax * ph
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">tessera-server RSS while units finish '
         f'({r["connections"]} connections, batch {r["batch"]})</text>',
         f'<rect x="{pad}" y="{pad}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for k in range(6):
        y = pad + ph - k * ph / 5
        o.append(f'<line x1="{pad}" x2="{pad + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        o.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#1f6fb2">{rmax * k / 5:g}</text>')
        o.append(f'<text x="{pad + pw + 6}" y="{y + 4:.1f}" fill="#d2691e">{umax * k / 5:.3g}</text>')
    step = nice(tmax)
    k = 0
    while k * step <= tmax + 1e-9:
        o.append(f'<text x="{X(k * step):.1f}" y="{pad + ph + 16}" text-anchor="middle">{k * step:g}</text>')
        k += 1
    o.append(f'<text x="{pad + pw / 2}" y="{pad + ph + 34}" text-anchor="middle">seconds into the measured run</text>')
    o.append(f'<text transform="translate({pad - 48},{pad + ph / 2}) rotate(-90)" text-anchor="middle" '
             f'fill="#1f6fb2">server RSS (MiB)</text>')
    o.append(f'<text transform="translate({pad + pw + 58},{pad + ph / 2}) rotate(90)" text-anchor="middle" '
             f'fill="#d2691e">units accepted since the start</text>')
    for key, Y, color, scale in (("rss_kb", Yr, "#1f6fb2", 1 / 1024), ("accepted", Yu, "#d2691e", 1)):
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(p['t_s']):.1f},{Y(p[key] * scale):.1f}" for i, p in enumerate(pts))
        o.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
    o.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(o) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
