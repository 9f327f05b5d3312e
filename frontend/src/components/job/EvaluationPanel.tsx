import { useMutation, useQueryClient } from '@tanstack/react-query'
import type { ReactNode } from 'react'
import { api } from '../../api/client'
import type { ArmName, ChatMessage, EvalExample, Evaluation, EvaluationReport } from '../../api/types'
import { ARMS } from '../../api/types'
import { formatNumber, formatPercent, formatTime } from '../../lib/format'
import { ErrorMessage } from '../common/ErrorMessage'
import { ARM_LABELS } from './arms'
import { ProgressBar } from '../common/ProgressBar'
import { StatusBadge } from '../common/StatusBadge'
import { ScrollText } from '../common/ScrollText'

const METRICS: { key: 'perplexity' | 'accuracy' | 'bleu' | 'chrf' | 'prompt_tokens_per_call'; label: string }[] = [
  { key: 'perplexity', label: 'Perplexity (lower is better)' },
  { key: 'accuracy', label: 'Accuracy' },
  { key: 'bleu', label: 'BLEU' },
  { key: 'chrf', label: 'chrF' },
  { key: 'prompt_tokens_per_call', label: 'Prompt tokens per call' },
]

function metricLabel(key: string): string {
  return METRICS.find((m) => m.key === key)?.label ?? key
}

/** Reports written before reasons were in words name the arm by its identifier. */
function inWords(text: string): string {
  return text.replaceAll('base_with_skill', 'base + SKILL.md')
}

function promptText(prompt: string | ChatMessage[]): string {
  return typeof prompt === 'string' ? prompt : prompt.map((m) => m.content).join('\n\n')
}

function ExampleCard({ example, arms }: { example: EvalExample; arms: ArmName[] }) {
  return (
    <li className="eval-example">
      <div className="eval-prompt">
        <div className="example-tags">
          <span className="tag">{example.id}</span>
          {example.generator ? <span className="tag">{example.generator}</span> : null}
          {example.section ? <span className="tag">{example.section}</span> : null}
        </div>
        <span className="role">prompt</span>
        <ScrollText>{promptText(example.prompt)}</ScrollText>
        <span className="role">reference</span>
        <ScrollText>{example.reference}</ScrollText>
      </div>
      <div className="arm-grid" style={{ gridTemplateColumns: `repeat(${arms.length}, minmax(0, 1fr))` }}>
        {arms.map((arm) => {
          const out = example.outputs[arm]
          return (
            <div key={arm} className="arm-output">
              <span className="role">{ARM_LABELS[arm]}</span>
              {out?.output ? <ScrollText>{out.output}</ScrollText> : <p className="muted">{out ? '(empty output)' : '—'}</p>}
              <small className="muted">
                chrF {formatNumber(out?.chrf, 3)} · perplexity {formatNumber(out?.perplexity, 3)}
              </small>
            </div>
          )
        })}
      </div>
    </li>
  )
}

function ExampleList({ title, ids, report, arms }: { title: string; ids: string[]; report: EvaluationReport; arms: ArmName[] }) {
  const byId = new Map(report.examples.map((e) => [e.id, e]))
  const chosen = ids.map((id) => byId.get(id)).filter((e): e is EvalExample => e !== undefined)
  return (
    <section aria-label={title}>
      <h3>{title}</h3>
      {chosen.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ol className="eval-examples">
          {chosen.map((e) => (
            <ExampleCard key={e.id} example={e} arms={arms} />
          ))}
        </ol>
      )}
    </section>
  )
}

/** The three arms side by side, what the adapter internalised, and the best and worst examples. */
export function EvaluationReportView({ report }: { report: EvaluationReport }) {
  const arms = ARMS.filter((arm) => report.arms[arm] !== undefined)
  return (
    <div className="eval-report">
      <p className="muted">
        {report.num_examples} example{report.num_examples === 1 ? '' : 's'} from{' '}
        {report.source === 'held_out' ? 'the held-out split' : 'the skill\'s evals.json'}; greedy decoding, at most{' '}
        {report.generation.max_new_tokens} new tokens.
        {report.skill_truncated ? ' The SKILL.md was truncated to fit the base model\'s context.' : ''}
      </p>
      {report.notes && report.notes.length > 0 ? (
        <div className="eval-notes" role="note" aria-label="Read this first">
          <strong>Read this first</strong>
          <ul>
            {report.notes.map((note) => (
              <li key={note}>{note}</li>
            ))}
          </ul>
        </div>
      ) : null}
      <table className="arms">
        <caption>Metrics per arm</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            {arms.map((arm) => (
              <th scope="col" key={arm}>
                {ARM_LABELS[arm]}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {METRICS.map((metric) => (
            <tr key={metric.key}>
              <th scope="row">{metric.label}</th>
              {arms.map((arm) => {
                const value = report.arms[arm]?.[metric.key] ?? null
                return <td key={arm}>{metric.key === 'accuracy' ? formatPercent(value) : formatNumber(value)}</td>
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <table className="compact internalisation">
        <caption>What the adapter internalised</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">Ratio</th>
            <th scope="col">Note</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(report.internalisation).map(([metric, value]) => (
            <tr key={metric}>
              <th scope="row">{metricLabel(metric)}</th>
              <td>{value.ratio === null ? 'means nothing' : value.ratio.toFixed(2)}</td>
              <td className="muted">{value.reason ? inWords(value.reason) : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted">
        Ratio = (adapter − base) / (base + SKILL.md − base): 1 means the adapter does as well as the SKILL.md in
        context, 0 no better than the base model; "means nothing" when the SKILL.md barely moves the metric or no
        arm wrote any text. Prompt tokens saved per call:{' '}
        <strong>{formatNumber(report.prompt_tokens_saved_per_call, 5)}</strong>.
      </p>
      <ExampleList title="Best examples" ids={report.best} report={report} arms={arms} />
      <ExampleList title="Worst examples" ids={report.worst} report={report} arms={arms} />
    </div>
  )
}

interface Props {
  evaluation: Evaluation | null | undefined
  error: unknown
  loading: boolean
  /** Whether the job has succeeded, so that Evaluate can run. */
  canEvaluate: boolean
  options?: ReactNode
  /** Every evaluation of the job, newest first; with more than one, a picker shows past reports. */
  history?: Omit<Evaluation, 'report'>[]
  selected?: string | null
  onSelect?: (evaluationId: string) => void
}

function HistoryPicker({ history, selected, onSelect }: Required<Pick<Props, 'history' | 'onSelect'>> & { selected: string | null }) {
  return (
    <label className="eval-history">
      Report{' '}
      <select value={selected ?? ''} onChange={(e) => onSelect(e.target.value)}>
        {history.map((item, index) => (
          <option key={item.evaluation_id} value={item.evaluation_id}>
            {`${formatTime(item.created_at)} · ${item.evaluation_id} · ${item.status}${index === 0 ? ' (latest)' : ''}`}
          </option>
        ))}
      </select>
    </label>
  )
}

/** Cancel a queued or running evaluation: a queued one never runs, a running one's process is stopped. */
function CancelEvaluation({ evaluation }: { evaluation: Evaluation }) {
  const queryClient = useQueryClient()
  const cancel = useMutation({
    mutationFn: () => api.cancelEvaluation(evaluation.job_id, evaluation.evaluation_id),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['jobs'] }),
  })
  return (
    <>
      <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
        Cancel evaluation
      </button>
      <ErrorMessage error={cancel.error} title="Could not cancel the evaluation" />
    </>
  )
}

export function EvaluationPanel({ evaluation, error, loading, canEvaluate, options, history = [], selected = null, onSelect }: Props) {
  return (
    <section className="panel" aria-labelledby="eval-title">
      <div className="heading-row">
        <h2 id="eval-title">Evaluation</h2>
        {evaluation ? <StatusBadge status={evaluation.status} /> : null}
        {evaluation ? <span className="muted">{evaluation.evaluation_id}</span> : null}
      </div>
      {canEvaluate ? options : null}
      {history.length > 1 && onSelect ? <HistoryPicker history={history} selected={selected} onSelect={onSelect} /> : null}
      <ErrorMessage error={error} title="Could not load the evaluation" />
      {loading ? <p role="status">Loading the evaluation…</p> : null}
      {!loading && !error && !evaluation ? (
        <p className="muted">
          {canEvaluate
            ? 'No evaluation yet. Press Evaluate to compare the base model, the base model with the SKILL.md in context, and the adapter on the held-out examples.'
            : 'No evaluation yet. Once the job has succeeded, press Evaluate.'}
        </p>
      ) : null}
      {evaluation && (evaluation.status === 'queued' || evaluation.status === 'running') ? (
        <div>
          <ProgressBar value={evaluation.progress} label="Evaluation progress" />
          <p className="muted">
            {evaluation.status === 'queued' ? 'Queued' : `Running since ${formatTime(evaluation.started_at)}`} —{' '}
            {formatPercent(evaluation.progress)}
          </p>
          <CancelEvaluation evaluation={evaluation} />
        </div>
      ) : null}
      {evaluation?.error ? <ErrorMessage error={new Error(evaluation.error.message)} title={evaluation.error.code} /> : null}
      {evaluation?.report ? <EvaluationReportView report={evaluation.report} /> : null}
    </section>
  )
}
