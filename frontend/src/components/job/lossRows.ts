import type { MetricPoint } from '../../api/types'

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
