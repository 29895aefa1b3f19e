// Small SVG line charts drawn by the page itself: axes with round ticks, lines, an optional
// shaded band and reference line. The SVG scales with its container (viewBox).
import { s } from './dom.js';

const PAD = { left: 64, right: 16, top: 14, bottom: 42 };

// Round tick values covering [lo, hi].
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) {
    if (lo === 0) hi = 1;
    else { const d = Math.abs(lo) * 0.1; lo -= d; hi += d; }
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  // The axis runs from the tick at or below lo to the tick at or above hi.
  const ticks = [];
  const first = Math.floor(lo / step + 1e-9) * step, last = Math.ceil(hi / step - 1e-9) * step;
  for (let v = first; v <= last + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return { ticks, lo: ticks[0], hi: ticks[ticks.length - 1], step };
}

// Ticks at 10^k inside [lo, hi], with 2·10^k and 5·10^k when the range spans few decades.
function logTicks(lo, hi) {
  if (!(hi > lo)) { lo /= 2; hi *= 2; }
  const decades = Math.log10(hi / lo);
  const mult = decades < 1.5 ? [1, 2, 5] : decades < 4 ? [1, 3] : [1];
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mult) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return { ticks, lo, hi };
}

// chart: {height, xLog, xLabel, yLabel, xFmt, yFmt, xMin, xMax, yMin, yMax, empty,
//         series: [{points: [[x, y]...], cls, dots}], band: {points: [[x, lo, hi]...], cls},
//         ref: {y, label}}
export function drawChart(svg, chart) {
  // Drawn at the size it is shown, so text keeps its size from phone to desktop.
  const W = Math.round(svg.clientWidth || svg.parentNode?.clientWidth || 640);
  const H = chart.height || Math.max(200, Math.min(340, Math.round(W * 0.42)));
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  svg.classList.add('chart');
  const pts = chart.series.flatMap((se) => se.points);
  if (!pts.length) {
    svg.replaceChildren(s('text.chart-empty', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, chart.empty || 'No data yet'));
    return svg;
  }
  let xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  if (chart.band) ys = ys.concat(chart.band.points.flatMap((p) => [p[1], p[2]]));
  if (chart.ref) ys.push(chart.ref.y);
  if (chart.xLog) xs = xs.filter((x) => x > 0);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const yAll = ys.filter(Number.isFinite);
  const yr = niceTicks(chart.yMin ?? Math.min(...yAll), chart.yMax ?? Math.max(...yAll), 5);
  const xr = chart.xLog ? logTicks(xmin, xmax) : niceTicks(chart.xMin ?? xmin, Math.max(xmax, chart.xMax ?? xmax), 5);
  const iw = W - PAD.left - PAD.right, ih = H - PAD.top - PAD.bottom;
  const fx = chart.xLog
    ? (x) => PAD.left + ((Math.log10(x) - Math.log10(xr.lo)) / (Math.log10(xr.hi) - Math.log10(xr.lo) || 1)) * iw
    : (x) => PAD.left + ((x - xr.lo) / (xr.hi - xr.lo || 1)) * iw;
  const fy = (y) => PAD.top + ih - ((y - yr.lo) / (yr.hi - yr.lo || 1)) * ih;
  const xFmt = chart.xFmt || String, yFmt = chart.yFmt || String;
  const nodes = [];

  // Grid and ticks.
  for (const t of yr.ticks) {
    nodes.push(s('line.grid-line', { x1: PAD.left, x2: W - PAD.right, y1: fy(t), y2: fy(t) }));
    nodes.push(s('text.tick', { x: PAD.left - 6, y: fy(t) + 4, 'text-anchor': 'end' }, yFmt(t, yr.step)));
  }
  const xt = xr.ticks.length > 8 ? xr.ticks.filter((_, i) => i % Math.ceil(xr.ticks.length / 8) === 0) : xr.ticks;
  for (const t of xt) {
    nodes.push(s('line.grid-line', { x1: fx(t), x2: fx(t), y1: PAD.top, y2: PAD.top + ih }));
    const anchor = fx(t) > W - PAD.right - 24 ? 'end' : 'middle'; // the last label stays inside
    nodes.push(s('text.tick', { x: fx(t), y: PAD.top + ih + 16, 'text-anchor': anchor }, xFmt(t, xr.step)));
  }
  nodes.push(s('rect.frame', { x: PAD.left, y: PAD.top, width: iw, height: ih }));

  if (chart.band && chart.band.points.length > 1) {
    const bp = chart.band.points.filter((p) => !chart.xLog || p[0] > 0);
    const upper = bp.map((p) => `${fx(p[0]).toFixed(1)},${fy(Math.min(p[2], yr.hi)).toFixed(1)}`);
    const lower = bp.slice().reverse().map((p) => `${fx(p[0]).toFixed(1)},${fy(Math.max(p[1], yr.lo)).toFixed(1)}`);
    nodes.push(s('polygon', { class: chart.band.cls || 'band', points: upper.concat(lower).join(' ') }));
  }
  if (chart.ref) {
    nodes.push(s('line.ref-line', { x1: PAD.left, x2: W - PAD.right, y1: fy(chart.ref.y), y2: fy(chart.ref.y) }));
    if (chart.ref.label) nodes.push(s('text.ref-label', { x: W - PAD.right - 4, y: fy(chart.ref.y) - 5, 'text-anchor': 'end' }, chart.ref.label));
  }
  for (const se of chart.series) {
    const p = se.points.filter((q) => (!chart.xLog || q[0] > 0) && Number.isFinite(q[1]));
    if (p.length > 1) {
      nodes.push(s('polyline', { class: se.cls || 'line', points: p.map((q) => `${fx(q[0]).toFixed(1)},${fy(q[1]).toFixed(1)}`).join(' ') }));
    }
    if (se.dots || p.length === 1) {
      for (const q of p.length > 200 ? [] : p) nodes.push(s('circle', { class: `${se.cls || 'line'}-dot dot`, cx: fx(q[0]).toFixed(1), cy: fy(q[1]).toFixed(1), r: 3 }));
    }
  }
  if (chart.xLabel) nodes.push(s('text.axis-label', { x: PAD.left + iw / 2, y: H - 6, 'text-anchor': 'middle' }, chart.xLabel));
  if (chart.yLabel) {
    nodes.push(s('text.axis-label', { x: 12, y: PAD.top + ih / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${PAD.top + ih / 2})` }, chart.yLabel));
  }
  svg.replaceChildren(...nodes);
  return svg;
}

// The class sizes it to its container (CSS) before the first draw measures it.
export function chart(label) {
  return s('svg.chart', { role: 'img', 'aria-label': label });
}
