import { describe, expect, it } from 'vitest'
import { niceTicks } from './axis'

function labels(min: number, max: number): string[] {
  const axis = niceTicks(min, max)
  return axis.ticks.map(axis.format)
}

describe('niceTicks', () => {
  it('labels a loss that barely moves without repeating a label', () => {
    // The tiny model's run: training loss between 7.1566 and 7.1842 (formerly labelled 7.17, 7.17, 7.18 …).
    const axis = niceTicks(7.1566, 7.1842)
    const shown = axis.ticks.map(axis.format)
    expect(shown).toEqual(['7.155', '7.160', '7.165', '7.170', '7.175', '7.180', '7.185'])
    expect(new Set(shown).size).toBe(shown.length)
    expect(axis.domain[0]).toBeLessThanOrEqual(7.1566)
    expect(axis.domain[1]).toBeGreaterThanOrEqual(7.1842)
  })

  it('uses whole numbers for a wide range and more decimals only when the step needs them', () => {
    expect(labels(0.4, 9.7)).toEqual(['0', '2', '4', '6', '8', '10'])
    expect(labels(3, 48)).toEqual(['0', '10', '20', '30', '40', '50'])
    expect(labels(1.2, 2.1)).toEqual(['1.2', '1.4', '1.6', '1.8', '2.0', '2.2'])
    expect(labels(0, 1)).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0'])
    expect(labels(2.2501, 2.2502)).toEqual(['2.25010', '2.25012', '2.25014', '2.25016', '2.25018', '2.25020'])
  })

  it('keeps every label distinct over many ranges', () => {
    for (const [min, max] of [
      [7.17, 7.171],
      [2.2501, 2.2502],
      [0.5, 120],
      [-3, 4.5],
      [1e-6, 3e-6],
      [11.999, 12.001],
    ]) {
      const shown = labels(min, max)
      expect(new Set(shown).size, `${min}..${max}: ${shown.join(', ')}`).toBe(shown.length)
      expect(shown.length).toBeGreaterThanOrEqual(2)
      expect(shown.length).toBeLessThanOrEqual(11)
    }
  })

  it('gives a flat series a range around its value, and nothing for no data', () => {
    const flat = niceTicks(7.17, 7.17)
    expect(flat.domain[0]).toBeLessThan(7.17)
    expect(flat.domain[1]).toBeGreaterThan(7.17)
    expect(new Set(flat.ticks.map(flat.format)).size).toBe(flat.ticks.length)
    expect(niceTicks(Infinity, -Infinity).ticks).toEqual([])
  })
})
