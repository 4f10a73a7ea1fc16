/**
 * A sparkline as an SVG path string: small, dependency-free, and pure.
 */

export interface SparklineRange {
  /** Value drawn at the bottom edge; defaults to the smallest value. */
  min?: number | null;
  /** Value drawn at the top edge; defaults to the largest value. */
  max?: number | null;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/**
 * The path for `values` drawn left to right across `width` x `height` (SVG y grows down).
 * A null value breaks the line; a lone point between gaps is drawn as a short flat dash
 * so it stays visible. Values outside the range are clamped to the edges. A flat series
 * sits in the middle. Returns "" when there is nothing to draw.
 */
export function sparklinePath(
  values: readonly (number | null)[],
  width: number,
  height: number,
  range: SparklineRange = {}
): string {
  const numbers = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (numbers.length === 0 || width <= 0 || height <= 0) {
    return '';
  }
  const low = range.min ?? Math.min(...numbers);
  const high = range.max ?? Math.max(...numbers);
  const span = high - low;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const y = (v: number) => {
    if (span <= 0) {
      return height / 2;
    }
    const clamped = Math.min(high, Math.max(low, v));
    return height - ((clamped - low) / span) * height;
  };

  const parts: string[] = [];
  let segment: [number, number][] = [];
  const flush = () => {
    if (segment.length === 1) {
      const [x0, y0] = segment[0];
      const half = Math.max(step / 2, 1);
      parts.push(`M${round(Math.max(0, x0 - half))},${round(y0)}L${round(Math.min(width, x0 + half))},${round(y0)}`);
    } else if (segment.length > 1) {
      parts.push(
        segment.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${round(px)},${round(py)}`).join('')
      );
    }
    segment = [];
  };
  values.forEach((value, i) => {
    if (typeof value === 'number' && Number.isFinite(value)) {
      segment.push([values.length > 1 ? i * step : width / 2, y(value)]);
    } else {
      flush();
    }
  });
  flush();
  return parts.join('');
}
