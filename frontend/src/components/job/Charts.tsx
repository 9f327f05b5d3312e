import {
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts'
import type { MetricPoint } from '../../api/types'
import { lossAxis, lossRows } from './lossRows'
import { formatNumber } from '../../lib/format'

const HEIGHT = 240
const tick = (value: number) => formatNumber(value, 3)

function ChartFigure({ title, summary, children }: { title: string; summary: string; children: React.ReactNode }) {
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div role="img" aria-label={`${title}: ${summary}`} className="chart-body">
        {children}
      </div>
    </figure>
  )
}

export function LossChart({ points }: { points: MetricPoint[] }) {
  const rows = lossRows(points)
  const train = rows.filter((r) => r.loss !== null)
  const evals = rows.filter((r) => r.eval_loss !== null)
  const last = train.at(-1)
  const yAxis = lossAxis(rows)
  const summary = rows.length
    ? `${train.length} training-loss points, latest ${formatNumber(last?.loss)}; ${evals.length} validation-loss points`
    : 'no points yet'
  return (
    <ChartFigure title="Loss" summary={summary}>
      {rows.length === 0 ? (
        <p className="muted chart-empty">No loss reported yet.</p>
      ) : (
        <ResponsiveContainer width="100%" height={HEIGHT}>
          <LineChart data={rows} margin={{ top: 8, right: 16, bottom: 4, left: 4 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#d8dde6" />
            <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} />
            <YAxis ticks={yAxis.ticks} domain={yAxis.domain} tickFormatter={yAxis.format} interval={0} width={56} />
            <Tooltip formatter={(value) => formatNumber(Number(value))} labelFormatter={(step) => `step ${step}`} />
            <Legend />
            <Line
              name="training loss"
              type="monotone"
              dataKey="loss"
              stroke="#2456c9"
              strokeWidth={2}
              dot={false}
              connectNulls
              isAnimationActive={false}
            />
            <Line
              name="validation loss"
              type="monotone"
              dataKey="eval_loss"
              stroke="#d9480f"
              strokeWidth={2}
              strokeDasharray="6 3"
              dot={{ r: 3 }}
              connectNulls
              isAnimationActive={false}
            />
          </LineChart>
        </ResponsiveContainer>
      )}
    </ChartFigure>
  )
}

export function LearningRateChart({ points }: { points: MetricPoint[] }) {
  const rows = points.filter((p) => p.learning_rate !== null).map((p) => ({ step: p.step, lr: p.learning_rate }))
  const summary = rows.length ? `${rows.length} points, latest ${formatNumber(rows.at(-1)?.lr)}` : 'no points yet'
  return (
    <ChartFigure title="Learning-rate schedule" summary={summary}>
      {rows.length === 0 ? (
        <p className="muted chart-empty">No learning rate reported yet.</p>
      ) : (
        <ResponsiveContainer width="100%" height={HEIGHT}>
          <LineChart data={rows} margin={{ top: 8, right: 16, bottom: 4, left: 4 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#d8dde6" />
            <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} />
            <YAxis tickFormatter={tick} width={64} />
            <Tooltip formatter={(value) => formatNumber(Number(value))} labelFormatter={(step) => `step ${step}`} />
            <Line
              name="learning rate"
              type="monotone"
              dataKey="lr"
              stroke="#2b8a3e"
              strokeWidth={2}
              dot={false}
              isAnimationActive={false}
            />
          </LineChart>
        </ResponsiveContainer>
      )}
    </ChartFigure>
  )
}

export function GpuChart({ points }: { points: MetricPoint[] }) {
  const rows = points
    .filter((p) => p.gpu_utilization !== null || p.gpu_memory_mb !== null)
    .map((p) => ({ step: p.step, util: p.gpu_utilization, mem: p.gpu_memory_mb }))
  if (rows.length === 0) {
    return (
      <figure className="chart">
        <figcaption>GPU</figcaption>
        <p className="no-gpu" role="note">
          No GPU: this job reports no GPU utilisation or memory, so it trains on the CPU.
        </p>
      </figure>
    )
  }
  const last = rows.at(-1)
  const summary = `latest utilisation ${formatNumber(last?.util, 3)}%, memory ${formatNumber(last?.mem, 5)} MB`
  return (
    <ChartFigure title="GPU utilisation and memory" summary={summary}>
      <ResponsiveContainer width="100%" height={HEIGHT}>
        <LineChart data={rows} margin={{ top: 8, right: 8, bottom: 4, left: 4 }}>
          <CartesianGrid strokeDasharray="3 3" stroke="#d8dde6" />
          <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} />
          <YAxis yAxisId="util" domain={[0, 100]} unit="%" width={48} />
          <YAxis yAxisId="mem" orientation="right" unit=" MB" width={80} tickFormatter={tick} />
          <Tooltip labelFormatter={(step) => `step ${step}`} />
          <Legend />
          <Line yAxisId="util" name="utilisation %" dataKey="util" stroke="#7048e8" dot={false} connectNulls isAnimationActive={false} />
          <Line yAxisId="mem" name="memory MB" dataKey="mem" stroke="#e8590c" dot={false} connectNulls isAnimationActive={false} />
        </LineChart>
      </ResponsiveContainer>
    </ChartFigure>
  )
}
