// Small live line charts as inline SVG: a few hundred bytes of code instead of Chart.js's line
// chart, so the status page adds next to nothing to the app's JavaScript. Colours come from
// the design tokens through CSS classes (styles/pages.css), so both themes apply by themselves;
// nothing animates, so reduced motion has nothing to reduce.

const SVG = 'http://www.w3.org/2000/svg';
/** The drawing's own units; the SVG stretches to its box (`preserveAspectRatio="none"`). */
export const WIDTH = 120;
export const HEIGHT = 40;
/** Room above the highest point and below zero, so a line at the edge stays visible. */
const PAD = 2;

/** The largest value of any of the series, at least `floor` (so an idle line lies flat at 0). */
export function scaleMax(series: readonly (readonly (number | null)[])[], floor = 1): number {
  let max = floor;
  for (const values of series) for (const v of values) if (v !== null && Number.isFinite(v) && v > max) max = v;
  return max;
}

/**
 * The path of one series: `slots` places from left to right, the newest value at the right
 * edge; a null is a gap (the line stops and starts again); a lone point is a short dash.
 */
export function linePath(values: readonly (number | null)[], slots: number, max: number): string {
  const step = WIDTH / Math.max(1, slots - 1);
  const offset = slots - values.length;
  const y = (v: number) => {
    const clamped = Math.min(Math.max(v, 0), max);
    return HEIGHT - PAD - (clamped / max) * (HEIGHT - 2 * PAD);
  };
  const parts: string[] = [];
  let open = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      open = false;
      return;
    }
    const x = (offset + i) * step;
    const next = values[i + 1];
    const lone = !open && (next === null || next === undefined || !Number.isFinite(next));
    if (lone) {
      parts.push(`M${round(Math.max(0, x - step / 2))} ${round(y(v))}H${round(x)}`);
    } else {
      parts.push(`${open ? 'L' : 'M'}${round(x)} ${round(y(v))}`);
      open = true;
    }
  });
  return parts.join('');
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** An SVG line chart of one or more series; `update` redraws it in place. */
export class Sparkline {
  readonly element: SVGSVGElement;

  private readonly paths: SVGPathElement[];

  /** `classes`: one CSS class per series (its colour and dash). */
  constructor(classes: readonly string[], label: string) {
    this.element = document.createElementNS(SVG, 'svg');
    this.element.setAttribute('class', 'spark');
    this.element.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    this.element.setAttribute('preserveAspectRatio', 'none');
    this.element.setAttribute('role', 'img');
    this.element.setAttribute('aria-label', label);
    const baseline = document.createElementNS(SVG, 'path');
    baseline.setAttribute('class', 'spark-base');
    baseline.setAttribute('d', `M0 ${HEIGHT - PAD}H${WIDTH}`);
    this.element.append(baseline);
    this.paths = classes.map((name) => {
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('class', `spark-line ${name}`);
      path.setAttribute('d', '');
      this.element.append(path);
      return path;
    });
  }

  update(series: readonly (readonly (number | null)[])[], slots: number, label: string): void {
    const max = scaleMax(series);
    series.forEach((values, i) => this.paths[i]?.setAttribute('d', linePath(values, slots, max)));
    this.element.setAttribute('aria-label', label);
    this.element.dataset.points = String(Math.max(0, ...series.map((s) => s.filter((v) => v !== null).length)));
  }
}
