// Axis ticks chosen from the data's range, so that no two labels read the same.

export interface AxisTicks {
  /** Evenly spaced tick values covering the data. */
  ticks: number[]
  /** The axis range: the first and the last tick. */
  domain: [number, number]
  /** Decimals every label is printed with: just enough to tell neighbouring ticks apart. */
  decimals: number
  format: (value: number) => string
}

/**
 * "Nice" ticks (steps of 1, 2 or 5 times a power of ten, the step nearest to range / `count`) over [min, max],
 * labelled with the decimals the step needs. A loss that moves between 7.1566 and 7.1842 gets 7.155, 7.160 …
 * 7.185, never 7.17, 7.17. A flat series gets a small range around its value.
 */
export function niceTicks(min: number, max: number, count = 5): AxisTicks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    return { ticks: [], domain: [0, 1], decimals: 0, format: (v) => String(v) }
  }
  if (min > max) [min, max] = [max, min]
  if (min === max) {
    const pad = Math.abs(min) * 0.01 || 1
    min -= pad
    max += pad
  }
  const rough = (max - min) / Math.max(1, count)
  const exponent = Math.floor(Math.log10(rough))
  const error = rough / 10 ** exponent
  const mantissa = error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.sqrt(2) ? 2 : 1
  const step = mantissa * 10 ** exponent
  const decimals = Math.max(0, -exponent - (mantissa === 10 ? 1 : 0))
  const first = Math.floor(min / step + 1e-9)
  const last = Math.ceil(max / step - 1e-9)
  const ticks: number[] = []
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toFixed(decimals)))
  return {
    ticks,
    domain: [ticks[0], ticks[ticks.length - 1]],
    decimals,
    format: (value: number) => value.toFixed(decimals),
  }
}
