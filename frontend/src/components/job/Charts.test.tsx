import { render, screen } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import type { MetricPoint } from '../../api/types'
import { LossChart } from './Charts'
import { lossAxis, lossRows } from './lossRows'

function point(step: number, loss: number | null, evalLoss: number | null = null): MetricPoint {
  return {
    id: step, ts: '2026-12-02T17:00:00Z', step, epoch: null, loss, eval_loss: evalLoss, learning_rate: null,
    grad_norm: null, tokens_per_second: null, elapsed_seconds: null, eta_seconds: null, gpu_utilization: null,
    gpu_memory_mb: null,
  } // prettier-ignore
}

// The tiny model's curve: every value rounds to 7.16-7.18 at three significant digits (the axis read 7.17, 7.17).
const LOSSES = [7.1789, 7.1772, 7.1842, 7.174, 7.1669, 7.1645, 7.1675, 7.1566, 7.1602]
const POINTS = [...LOSSES.map((loss, i) => point(i + 1, loss)), point(9, null, 7.1912)]

describe('the loss chart', () => {
  it('labels its y-axis without repeating a label, over both curves', () => {
    const axis = lossAxis(lossRows(POINTS))
    const labels = axis.ticks.map(axis.format)
    expect(labels).toEqual(['7.155', '7.160', '7.165', '7.170', '7.175', '7.180', '7.185', '7.190', '7.195'])
    expect(new Set(labels).size).toBe(labels.length)
    expect(axis.domain).toEqual([7.155, 7.195]) // covers the lowest training and the highest validation loss
  })

  it('renders the chart with its summary', () => {
    render(<LossChart points={POINTS} />)
    expect(screen.getByRole('img', { name: /Loss: 9 training-loss points, latest 7\.16; 1 validation-loss points/ })).toBeInTheDocument()
  })
})
