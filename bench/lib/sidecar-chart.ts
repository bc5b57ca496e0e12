/** One bar of the chart: a variant's added CPU per request in one phase, split into client and proxy. */
export interface ChartBar {
  readonly phase: string;
  readonly variant: string;
  readonly clientUs: number;
  readonly proxyUs: number;
  /** The total written at the bar's end: the report's own figure (the median of per-round sums, not the sum of the two medians). */
  readonly totalUs: number;
}

const WIDTH = 760;
const LABEL = 190;
const BAR = 18;
const GAP = 6;
const GROUP_GAP = 22;
const TOP = 56;

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * A horizontal bar chart as SVG: per phase, one bar per variant, its added client CPU and the proxy's
 * CPU stacked, with the total written at its end. Plain SVG, no script, so it shows in a Markdown page.
 *
 * @param title - the heading
 * @param bars - in the order to draw, grouped by phase
 */
export function sidecarChart(title: string, bars: readonly ChartBar[]): string {
  const phases = [...new Set(bars.map((b) => b.phase))];
  const max = Math.max(1, ...bars.map((b) => Math.max(0, b.clientUs) + Math.max(0, b.proxyUs)));
  const scale = (WIDTH - LABEL - 90) / max;
  const parts: string[] = [];
  let y = TOP;
  for (const phase of phases) {
    parts.push(`<text x="8" y="${String(y + 12)}" font-weight="bold">${escape(phase)}</text>`);
    y += 20;
    for (const bar of bars.filter((b) => b.phase === phase)) {
      const client = Math.max(0, bar.clientUs) * scale;
      const proxy = Math.max(0, bar.proxyUs) * scale;
      const total = bar.totalUs;
      parts.push(`<text x="${String(LABEL - 8)}" y="${String(y + 13)}" text-anchor="end">${escape(bar.variant)}</text>`);
      parts.push(`<rect x="${String(LABEL)}" y="${String(y)}" width="${client.toFixed(1)}" height="${String(BAR)}" fill="#4477aa"/>`);
      if (proxy > 0) parts.push(`<rect x="${(LABEL + client).toFixed(1)}" y="${String(y)}" width="${proxy.toFixed(1)}" height="${String(BAR)}" fill="#ee7733"/>`);
      parts.push(`<text x="${(LABEL + client + proxy + 6).toFixed(1)}" y="${String(y + 13)}">${total.toFixed(1)} µs</text>`);
      y += BAR + GAP;
    }
    y += GROUP_GAP;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${String(WIDTH)}" height="${String(height)}" viewBox="0 0 ${String(WIDTH)} ${String(height)}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<rect x="8" y="32" width="12" height="12" fill="#4477aa"/><text x="26" y="43">added client CPU per request</text>`,
    `<rect x="250" y="32" width="12" height="12" fill="#ee7733"/><text x="268" y="43">proxy CPU per request</text>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}
