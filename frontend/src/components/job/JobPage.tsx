import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useEffect, useRef, useState } from 'react'
import { Link, useParams } from 'react-router-dom'
import { api } from '../../api/client'
import {
  jobKeys,
  useCheckpoints,
  useDataset,
  useEvaluation,
  useEvaluations,
  useEvents,
  useJobStatus,
  useLogs,
  useMetrics,
} from '../../api/queries'
import { isTerminal, type JobStatus, type MetricPoint } from '../../api/types'
import { formatDuration, formatNumber, formatTime } from '../../lib/format'
import { ErrorMessage } from '../common/ErrorMessage'
import { ProgressBar } from '../common/ProgressBar'
import { StatusBadge } from '../common/StatusBadge'
import { GpuChart, LearningRateChart, LossChart } from './Charts'
import { Checkpoints } from './Checkpoints'
import { DatasetPanel } from './DatasetPanel'
import { EvaluationPanel } from './EvaluationPanel'
import { jobElapsedSeconds, useNow } from './elapsed'
import { EvaluateOptionsForm } from './EvaluateOptions'
import { EMPTY_EVALUATE_FORM, evaluateErrors, toEvaluateOptions } from './evaluateForm'
import { LogTail } from './LogTail'
import { Timeline } from './Timeline'
import { ScrollText } from '../common/ScrollText'
import { TryItPanel } from './TryItPanel'

function lastValue(points: MetricPoint[], key: keyof MetricPoint): number | null {
  for (let i = points.length - 1; i >= 0; i--) {
    const value = points[i][key]
    if (typeof value === 'number') return value
  }
  return null
}

function Summary({ job, points }: { job: JobStatus; points: MetricPoint[] }) {
  const terminal = isTerminal(job.status)
  const tokensPerSecond = lastValue(points, 'tokens_per_second')
  const now = useNow(job.status === 'running')
  const elapsed = jobElapsedSeconds(job, now)
  const epoch = job.total_epochs ? Math.max(job.current_epoch, job.status === 'queued' ? 0 : 1) : 0
  return (
    <section className="panel" aria-labelledby="progress-title">
      <h2 id="progress-title" className="sr-only">
        Progress
      </h2>
      <div className="progress-line">
        <ProgressBar value={job.progress} label="Training progress" />
        <span className="progress-text">{Math.round(job.progress * 100)}%</span>
      </div>
      <div className="stat-row">
        <div className="stat">
          <span className="stat-value">
            {epoch}/{job.total_epochs}
          </span>
          <span className="stat-label">epoch</span>
        </div>
        <div className="stat">
          <span className="stat-value">
            {job.step}/{job.total_steps ?? '?'}
          </span>
          <span className="stat-label">step</span>
        </div>
        <div className="stat">
          <span className="stat-value">{terminal ? '—' : formatDuration(job.eta_seconds)}</span>
          <span className="stat-label">ETA</span>
        </div>
        <div className="stat">
          <span className="stat-value">{formatNumber(job.loss)}</span>
          <span className="stat-label">loss</span>
        </div>
        <div className="stat">
          <span className="stat-value">{formatNumber(job.eval_loss)}</span>
          <span className="stat-label">validation loss</span>
        </div>
        <div className="stat">
          <span className="stat-value">{formatNumber(job.learning_rate)}</span>
          <span className="stat-label">learning rate</span>
        </div>
        <div className="stat">
          <span className="stat-value">{formatNumber(tokensPerSecond, 4)}</span>
          <span className="stat-label">tokens/s</span>
        </div>
        <div className="stat" title="Since a worker started the job: includes starting the training process and loading the model, not the time queued">
          <span className="stat-value">{formatDuration(elapsed)}</span>
          <span className="stat-label">elapsed since start</span>
        </div>
      </div>
      <dl className="facts">
        <div>
          <dt>Created</dt>
          <dd>{formatTime(job.created_at)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{formatTime(job.started_at)}</dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd>{formatTime(job.finished_at)}</dd>
        </div>
        <div>
          <dt>Attempts</dt>
          <dd>{job.attempts}</dd>
        </div>
        {job.adapter_path ? (
          <div>
            <dt>Adapter</dt>
            <dd>
              <code className="wrap">{job.adapter_path}</code>
            </dd>
          </div>
        ) : null}
      </dl>
    </section>
  )
}

/** One job: progress, curves, GPU, log, checkpoints, and its evaluation. Polls until the job is terminal. */
export function JobPage() {
  const { jobId = '' } = useParams()
  const queryClient = useQueryClient()
  const status = useJobStatus(jobId)
  const job = status.data
  const live = job !== undefined && !isTerminal(job.status)
  const metrics = useMetrics(jobId, live)
  const logs = useLogs(jobId, live)
  const checkpoints = useCheckpoints(jobId, live)
  const events = useEvents(jobId, live)
  const dataset = useDataset(jobId, live)
  const succeeded = job?.status === 'succeeded'
  const latest = useEvaluation(jobId, succeeded)
  const [chosen, setChosen] = useState<string | null>(null) // null: follow the latest evaluation
  const history = useEvaluations(jobId, succeeded, latest.data ? `${latest.data.evaluation_id}:${latest.data.status}` : undefined)
  const past = useEvaluation(jobId, succeeded && chosen !== null, chosen)
  const evaluation = chosen === null ? latest : past

  // The last poll may precede the job's last rows: read everything once more when it ends.
  const wasLive = useRef(false)
  useEffect(() => {
    if (live) wasLive.current = true
    else if (wasLive.current && job) {
      wasLive.current = false
      void queryClient.invalidateQueries({ queryKey: jobKeys.metrics(jobId) })
      void queryClient.invalidateQueries({ queryKey: jobKeys.logs(jobId) })
      void queryClient.invalidateQueries({ queryKey: jobKeys.checkpoints(jobId) })
      void queryClient.invalidateQueries({ queryKey: jobKeys.events(jobId) })
      void queryClient.invalidateQueries({ queryKey: jobKeys.lists() })
    }
  }, [live, job, jobId, queryClient])

  const cancel = useMutation({
    mutationFn: () => api.cancel(jobId),
    onSuccess: (data) => queryClient.setQueryData(jobKeys.status(jobId), data),
  })
  const [evalForm, setEvalForm] = useState(EMPTY_EVALUATE_FORM)
  const evalFormValid = Object.keys(evaluateErrors(evalForm)).length === 0
  const evaluate = useMutation({
    mutationFn: () => api.evaluate(jobId, toEvaluateOptions(evalForm)),
    onSuccess: () => {
      setChosen(null)
      void queryClient.invalidateQueries({ queryKey: jobKeys.evaluation(jobId) })
    },
  })

  if (status.isPending) return <p role="status">Loading {jobId}…</p>
  if (status.isError && !job)
    return (
      <div>
        <h1>{jobId}</h1>
        <ErrorMessage error={status.error} title="Could not load the job" />
        <p>
          <Link to="/jobs">Back to the jobs</Link>
        </p>
      </div>
    )

  const points = metrics.data?.items ?? []
  const evalBusy = latest.data?.status === 'queued' || latest.data?.status === 'running'
  return (
    <div className="job-page">
      <div className="heading-row">
        <h1>
          {job!.skill_name} <span className="muted job-id">{jobId}</span>
        </h1>
        <StatusBadge status={job!.status} />
        <span className="spacer" />
        <button
          type="button"
          className="danger"
          onClick={() => cancel.mutate()}
          disabled={!live || cancel.isPending}
          title={live ? 'Stop this job at its next step' : 'Only a queued or running job can be cancelled'}
        >
          Cancel
        </button>
        <button
          type="button"
          className="primary"
          onClick={() => evaluate.mutate()}
          disabled={job!.status !== 'succeeded' || evaluate.isPending || evalBusy || !evalFormValid}
          title={job!.status === 'succeeded' ? 'Compare base, base + skill and adapter' : 'Evaluate a succeeded job'}
        >
          Evaluate
        </button>
      </div>
      {status.isError ? <ErrorMessage error={status.error} title="Could not refresh the job; retrying" /> : null}
      <ErrorMessage error={cancel.error} title="Cancel failed" />
      <ErrorMessage error={evaluate.error} title="Evaluation was not started" />
      {job!.error ? (
        <div className="error" role="alert">
          <strong>{job!.error.code}: </strong>
          {job!.error.message}
        </div>
      ) : null}
      <Summary job={job!} points={points} />
      <ErrorMessage error={metrics.error} title="Could not load the metrics" />
      <div className="chart-grid">
        <LossChart points={points} />
        <LearningRateChart points={points} />
        <GpuChart points={points} />
      </div>
      <div className="two-columns">
        <div>
          <ErrorMessage error={logs.error} title="Could not load the log" />
          <LogTail lines={logs.data?.items ?? []} live={live} />
        </div>
        <div>
          <ErrorMessage error={events.error} title="Could not load the events" />
          <Timeline events={events.data?.items ?? []} live={live} />
          <ErrorMessage error={checkpoints.error} title="Could not load the checkpoints" />
          <Checkpoints checkpoints={checkpoints.data?.data ?? []} />
          <ErrorMessage error={dataset.error} title="Could not load the dataset" />
          <DatasetPanel dataset={dataset.data} />
          <details className="panel config">
            <summary>Resolved configuration</summary>
            <ScrollText>{JSON.stringify(job!.config, null, 2)}</ScrollText>
          </details>
        </div>
      </div>
      {succeeded ? <TryItPanel jobId={jobId} /> : null}
      <EvaluationPanel
        evaluation={evaluation.data}
        error={evaluation.error}
        loading={evaluation.isLoading}
        canEvaluate={job!.status === 'succeeded'}
        history={history.data?.data ?? []}
        selected={chosen ?? latest.data?.evaluation_id ?? null}
        onSelect={(id) => setChosen(id === latest.data?.evaluation_id ? null : id)}
        options={<EvaluateOptionsForm form={evalForm} onChange={setEvalForm} />}
      />
    </div>
  )
}
