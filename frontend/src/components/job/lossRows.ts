import type { MetricPoint } from '../../api/types'
import { niceTicks, type AxisTicks } from '../../lib/axis'

export interface LossRow {
  step: number
  loss: number | null
  eval_loss: number | null
}

/** One row per step, with the training loss and the held-out loss where the step has them. */
export function lossRows(points: MetricPoint[]): LossRow[] {
  const byStep = new Map<number, LossRow>()
  for (const p of points) {
    if (p.loss === null && p.eval_loss === null) continue
    const row = byStep.get(p.step) ?? { step: p.step, loss: null, eval_loss: null }
    if (p.loss !== null) row.loss = p.loss
    if (p.eval_loss !== null) row.eval_loss = p.eval_loss
    byStep.set(p.step, row)
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step)
}

/** The loss chart's y-axis: ticks from the range of both curves, so a loss that barely moves still gets
 * distinct labels (7.160, 7.165, not 7.17, 7.17). */
export function lossAxis(rows: LossRow[]): AxisTicks {
  const values = rows.flatMap((r) => [r.loss, r.eval_loss]).filter((v): v is number => v !== null && Number.isFinite(v))
  return niceTicks(Math.min(...values), Math.max(...values))
}
