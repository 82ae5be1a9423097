// Small line charts on a canvas, for the viewer: a few series over x, the y range fitted to
// the data, the latest value of each in the legend.

export interface Series {
  name: string;
  color: string;
  /** [x, y] in increasing x. */
  points: [number, number][];
}

export interface ChartOptions {
  title: string;
  /** Appended to y values in labels ("µs", "B"). */
  unit?: string;
  /** Draw each series as steps (a count that changes at events) rather than lines. */
  steps?: boolean;
}

const fmt = (v: number) => (Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

export function drawChart(canvas: HTMLCanvasElement, series: Series[], options: ChartOptions): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { width: w, height: h } = canvas;
  const pad = { left: 44, right: 8, top: 18, bottom: 16 };
  ctx.fillStyle = "#0b0e13";
  ctx.fillRect(0, 0, w, h);
  ctx.font = "11px system-ui";
  ctx.fillStyle = "#7d8796";
  ctx.fillText(options.title, pad.left, 12);
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    ctx.fillText("no data yet", pad.left, h / 2);
    return;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(...ys, y0 + 1);
  const px = (x: number) => pad.left + ((x - x0) / (x1 - x0)) * (w - pad.left - pad.right);
  const py = (y: number) => h - pad.bottom - ((y - y0) / (y1 - y0)) * (h - pad.top - pad.bottom);
  ctx.strokeStyle = "#2b3442";
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, h - pad.bottom);
  ctx.lineTo(w - pad.right, h - pad.bottom);
  ctx.stroke();
  const unit = options.unit ?? "";
  ctx.fillText(`${fmt(y1)}${unit}`, 2, pad.top + 8);
  ctx.fillText(`${fmt(y0)}${unit}`, 2, h - pad.bottom);
  ctx.fillText(String(x0), pad.left, h - 3);
  const right = String(x1);
  ctx.fillText(right, w - pad.right - ctx.measureText(right).width, h - 3);
  let legend = pad.left + ctx.measureText(options.title).width + 12;
  for (const s of series) {
    if (s.points.length === 0) continue;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => {
      if (i === 0) ctx.moveTo(px(x), py(y));
      else {
        if (options.steps) ctx.lineTo(px(x), py(s.points[i - 1]![1]));
        ctx.lineTo(px(x), py(y));
      }
    });
    if (options.steps) ctx.lineTo(px(x1), py(s.points[s.points.length - 1]![1]));
    ctx.stroke();
    ctx.lineWidth = 1;
    const label = `${s.name} ${fmt(s.points[s.points.length - 1]![1])}${unit}`;
    ctx.fillStyle = s.color;
    ctx.fillText(label, legend, 12);
    legend += ctx.measureText(label).width + 10;
  }
}
