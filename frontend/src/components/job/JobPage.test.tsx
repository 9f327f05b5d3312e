import { screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { POLL_MS } from '../../api/queries'
import { apiError, mockApi } from '../../test/api'
import { renderAt } from '../../test/render'
import { lossRows } from './lossRows'
import { JobPage } from './JobPage'

const ID = 'train-abc123'
const BASE = `/api/training/${ID}`

function status(overrides: Record<string, unknown> = {}) {
  return {
    job_id: ID,
    status: 'running',
    progress: 0.5,
    current_epoch: 2,
    total_epochs: 3,
    loss: 2.25,
    started_at: '2026-11-26T08:00:05Z',
    created_at: '2026-11-26T08:00:00Z',
    finished_at: null,
    step: 10,
    total_steps: 20,
    learning_rate: 0.0001,
    eval_loss: 2.5,
    eta_seconds: 125,
    attempts: 1,
    skill_name: 'commit-messages',
    adapter_path: null,
    error: null,
    config: { num_epochs: 3 },
    ...overrides,
  }
}

function point(id: number, step: number, extra: Record<string, unknown> = {}) {
  return {
    id,
    ts: '2026-11-26T08:00:10Z',
    step,
    epoch: step / 10,
    loss: 3 - step * 0.1,
    eval_loss: null,
    learning_rate: 0.0002 - step * 0.00001,
    grad_norm: 1,
    tokens_per_second: 812.5,
    elapsed_seconds: 30,
    eta_seconds: 100,
    gpu_utilization: null,
    gpu_memory_mb: null,
    ...extra,
  }
}

const REPORT = {
  source: 'held_out',
  num_examples: 2,
  generation: { do_sample: false, max_new_tokens: 64 },
  skill_truncated: false,
  arms: {
    base: { perplexity: 40.5, accuracy: null, bleu: 1.5, chrf: 10.25, prompt_tokens_per_call: 28 },
    base_with_skill: { perplexity: 12.5, accuracy: null, bleu: 20.5, chrf: 40.75, prompt_tokens_per_call: 1170 },
    adapter: { perplexity: 15.5, accuracy: null, bleu: 18.5, chrf: 38.5, prompt_tokens_per_call: 28 },
  },
  internalisation: { chrf: { ratio: 0.92, reason: null }, accuracy: { ratio: null, reason: 'no accuracy on free text' } },
  prompt_tokens_saved_per_call: 1142,
  examples: [
    { id: 'ex-1', prompt: 'Write a commit message for a typo fix', reference: 'fix: correct typo', outputs: { base: { output: 'hello', perplexity: 50, chrf: 5 }, base_with_skill: { output: 'fix: typo', perplexity: 10, chrf: 60 }, adapter: { output: 'fix: correct a typo', perplexity: 12, chrf: 70 } } },
    { id: 'ex-2', prompt: 'Summarise this diff', reference: 'feat: add parser', outputs: { base: { output: '', perplexity: 60, chrf: 0 }, base_with_skill: { output: 'feat: parser', perplexity: 11, chrf: 50 }, adapter: { output: 'chore', perplexity: 30, chrf: 3 } } },
  ],
  best: ['ex-1'],
  worst: ['ex-2'],
}

afterEach(() => vi.unstubAllGlobals())

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

const DATASET = {
  job_id: ID,
  recipe: 'distill',
  summary: { teacher: { do_sample: false, max_new_tokens: 128, skill_truncated: false }, dropped: { empty_answer: 2 } },
  examples: [
    { split: 'train', prompt: 'Write the commit message for this diff', completion: 'fix(parser): handle empty input', source: 'model', kind: 'task', section: 'description' },
  ],
  count: 1,
}

describe('the job page', () => {
  it('shows progress, curves, log, checkpoints, and stops polling once the job is terminal', async () => {
    let current = status()
    const api = mockApi({
      'GET /v1/models': { body: { object: 'list', data: [] } },
      [`GET ${BASE}/status`]: () => ({ body: current }),
      [`GET ${BASE}/metrics`]: (call) => ({
        body: call.path.includes('after=0')
          ? { points: [point(1, 1), point(2, 2), point(3, 2, { loss: null, eval_loss: 2.5, tokens_per_second: null })], next: 3 }
          : { points: [], next: 3 },
      }),
      [`GET ${BASE}/logs`]: (call) => ({
        body: call.path.includes('after=0')
          ? { lines: [{ id: 7, ts: '2026-11-26T08:00:10Z', level: 'INFO', message: 'step 2/20: loss=2.8' }], next: 7 }
          : { lines: [], next: 7 },
      }),
      [`GET ${BASE}/checkpoints`]: {
        body: {
          data: [{ step: 5, name: 'checkpoint-5', path: '/c/checkpoint-5', complete: true, metrics: { train_loss: 2.75, validation_loss: 2.5 } }],
          count: 1,
        },
      },
      [`GET ${BASE}/events`]: (call) => ({
        body: call.path.includes('after=0')
          ? {
              data: [
                { id: 1, time: '2026-11-26T08:00:00Z', level: 'info', type: 'created', message: 'Job created', data: {} },
                { id: 2, time: '2026-11-26T08:00:05Z', level: 'info', type: 'started', message: 'Started on worker w1 (attempt 1)', data: {} },
              ],
              next: 2,
            }
          : call.path.includes('after=2') && current.status === 'succeeded'
            ? { data: [{ id: 3, time: '2026-11-26T08:01:00Z', level: 'info', type: 'succeeded', message: 'Job succeeded', data: {} }], next: 3 }
            : { data: [], next: call.path.includes('after=3') ? 3 : 2 },
      }),
      [`GET ${BASE}/dataset`]: { body: DATASET },
      [`GET ${BASE}/evaluation`]: apiError(404, 'evaluation_not_found', 'No evaluation yet'),
    })
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)

    expect(await screen.findByRole('progressbar', { name: 'Training progress' })).toHaveAttribute('aria-valuenow', '50')
    expect(screen.getByText('2/3')).toBeInTheDocument()
    expect(screen.getByText('2 min 5 s')).toBeInTheDocument()
    expect(await screen.findByText('812.5')).toBeInTheDocument()
    expect(screen.getByRole('note')).toHaveTextContent('No GPU')
    expect(screen.getByRole('img', { name: /Loss: 2 training-loss points.*1 validation-loss points/ })).toBeInTheDocument()
    expect(screen.getByRole('img', { name: /Learning-rate schedule: 3 points/ })).toBeInTheDocument()
    expect(await screen.findByText(/step 2\/20: loss=2.8/)).toBeInTheDocument()
    expect(screen.getByRole('rowheader', { name: 'checkpoint-5' })).toBeInTheDocument()
    expect(screen.getByRole('cell', { name: '2.75' })).toBeInTheDocument() // the checkpoint's train loss
    const timeline = await screen.findByRole('list', { name: 'Job events' })
    await waitFor(() => expect(within(timeline).getAllByRole('listitem')).toHaveLength(2))
    expect(within(timeline).getByText('Started on worker w1 (attempt 1)')).toBeInTheDocument()
    expect(await screen.findByRole('heading', { name: 'Dataset (distill)' })).toBeInTheDocument()
    expect(screen.getByText('fix(parser): handle empty input')).toBeInTheDocument()
    expect(screen.getByText(/Teacher: base model with the SKILL.md as system prompt.*Dropped: empty_answer 2/)).toBeInTheDocument()
    expect(screen.getByRole('button', { name: 'Cancel' })).toBeEnabled()
    expect(screen.getByRole('button', { name: 'Evaluate' })).toBeDisabled()

    await waitFor(() => expect(api.count('GET', `${BASE}/metrics?after=3`)).toBeGreaterThan(0), { timeout: POLL_MS * 3 })
    current = status({ status: 'succeeded', progress: 1, current_epoch: 3, finished_at: '2026-11-26T08:01:00Z' })
    await screen.findByText('succeeded', {}, { timeout: POLL_MS * 3 })
    expect(await screen.findByText(/No evaluation yet. Press Evaluate/)).toBeInTheDocument()
    await waitFor(() => expect(within(timeline).getByText('Job succeeded')).toBeInTheDocument()) // read once more at the end
    expect(api.calls.filter((c) => c.path.includes('/events?after=0'))).toHaveLength(1) // only new events are fetched
    expect(screen.getByRole('button', { name: 'Evaluate' })).toBeEnabled()
    expect(screen.getByRole('button', { name: 'Cancel' })).toBeDisabled()
    await wait(300)
    const before = api.calls.length
    await wait(POLL_MS * 2)
    expect(api.calls.slice(before).map((c) => c.path)).toEqual([])
  })

  it('keeps the page and retries when a poll fails, then carries on', async () => {
    const answers = [
      { body: status() },
      apiError(503, 'database_unavailable', 'The database is unavailable; retry shortly.'),
      { body: status({ status: 'succeeded', progress: 1 }) },
    ]
    mockApi({
      'GET /v1/models': { body: { object: 'list', data: [] } },
      [`GET ${BASE}/status`]: () => answers.shift() ?? { body: status({ status: 'succeeded', progress: 1 }) },
      [`GET ${BASE}/metrics`]: { body: { points: [], next: 0 } },
      [`GET ${BASE}/logs`]: { body: { lines: [], next: 0 } },
      [`GET ${BASE}/checkpoints`]: { body: { data: [], count: 0 } },
      [`GET ${BASE}/events`]: { body: { data: [], next: 0 } },
      [`GET ${BASE}/dataset`]: { body: DATASET },
      [`GET ${BASE}/evaluation`]: apiError(404, 'evaluation_not_found', 'No evaluation yet'),
    })
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)
    const alert = await screen.findByRole('alert', {}, { timeout: POLL_MS * 3 })
    expect(alert).toHaveTextContent('The database is unavailable; retry shortly.')
    expect(screen.getByRole('progressbar', { name: 'Training progress' })).toBeInTheDocument()
    expect(await screen.findByText('succeeded', {}, { timeout: POLL_MS * 5 })).toBeInTheDocument()
    expect(screen.queryByRole('alert')).toBeNull()
  })

  it('reports GPU use when the metrics have it', async () => {
    mockApi({
      'GET /v1/models': { body: { object: 'list', data: [] } },
      [`GET ${BASE}/status`]: { body: status({ status: 'cancelled' }) },
      [`GET ${BASE}/metrics`]: { body: { points: [point(1, 1, { gpu_utilization: 87, gpu_memory_mb: 20480 })], next: 1 } },
      [`GET ${BASE}/logs`]: { body: { lines: [], next: 0 } },
      [`GET ${BASE}/checkpoints`]: { body: { data: [], count: 0 } },
      [`GET ${BASE}/events`]: { body: { data: [], next: 0 } },
      [`GET ${BASE}/dataset`]: { body: DATASET },
    })
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)
    expect(await screen.findByRole('img', { name: /GPU utilisation and memory: latest utilisation 87%, memory 20480 MB/ })).toBeInTheDocument()
    expect(screen.queryByText(/No GPU/)).toBeNull()
  })

  it('cancels a running job and shows a failed job\'s error', async () => {
    const api = mockApi({
      'GET /v1/models': { body: { object: 'list', data: [] } },
      [`GET ${BASE}/status`]: { body: status() },
      [`GET ${BASE}/metrics`]: { body: { points: [], next: 0 } },
      [`GET ${BASE}/logs`]: { body: { lines: [], next: 0 } },
      [`GET ${BASE}/checkpoints`]: { body: { data: [], count: 0 } },
      [`GET ${BASE}/events`]: { body: { data: [], next: 0 } },
      [`GET ${BASE}/dataset`]: { body: DATASET },
      [`POST ${BASE}/cancel`]: {
        status: 202,
        body: status({ status: 'failed', error: { code: 'out_of_memory', message: 'CUDA out of memory: lower batch_size' } }),
      },
    })
    const user = userEvent.setup()
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)
    await user.click(await screen.findByRole('button', { name: 'Cancel' }))
    expect(api.count('POST', `${BASE}/cancel`)).toBe(1)
    expect(await screen.findByRole('alert')).toHaveTextContent('out_of_memory: CUDA out of memory: lower batch_size')
  })

  it('starts an evaluation, shows the API\'s refusal, and renders a report with the three arms', async () => {
    let evaluation: unknown = null
    let refuse = true
    const api = mockApi({
      'GET /v1/models': { body: { object: 'list', data: [] } },
      [`GET ${BASE}/status`]: { body: status({ status: 'succeeded', progress: 1 }) },
      [`GET ${BASE}/metrics`]: { body: { points: [], next: 0 } },
      [`GET ${BASE}/logs`]: { body: { lines: [], next: 0 } },
      [`GET ${BASE}/checkpoints`]: { body: { data: [], count: 0 } },
      [`GET ${BASE}/events`]: { body: { data: [], next: 0 } },
      [`GET ${BASE}/dataset`]: { body: DATASET },
      [`GET ${BASE}/evaluation`]: () =>
        evaluation ? { body: evaluation } : apiError(404, 'evaluation_not_found', 'No evaluation yet'),
      [`GET ${BASE}/evaluations`]: () => ({ body: { data: evaluation ? [evaluation] : [], count: evaluation ? 1 : 0 } }),
      [`POST ${BASE}/evaluate`]: () => {
        if (refuse) return apiError(409, 'job_state_conflict', 'Only a succeeded job can be evaluated')
        evaluation = {
          evaluation_id: 'eval-1', job_id: ID, status: 'succeeded', progress: 1,
          created_at: '2026-11-26T08:02:00Z', started_at: '2026-11-26T08:02:01Z', finished_at: '2026-11-26T08:03:00Z',
          error: null, report: REPORT,
        }
        return { status: 202, body: { evaluation_id: 'eval-1', job_id: ID, status: 'queued', created_at: '2026-11-26T08:02:00Z' } }
      },
    })
    const user = userEvent.setup()
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)
    await user.click(await screen.findByRole('button', { name: 'Evaluate' }))
    expect(await screen.findByRole('alert')).toHaveTextContent('Only a succeeded job can be evaluated')

    refuse = false
    await user.click(screen.getByText('Evaluation options'))
    await user.type(screen.getByLabelText('Examples'), '0')
    expect(screen.getByText('Examples must be a whole number from 1 to 1000')).toBeInTheDocument()
    expect(screen.getByRole('button', { name: 'Evaluate' })).toBeDisabled()
    await user.clear(screen.getByLabelText('Examples'))
    await user.type(screen.getByLabelText('Examples'), '5')
    await user.selectOptions(screen.getByLabelText('Cases'), 'held_out')
    await user.click(screen.getByRole('button', { name: 'Evaluate' }))
    const table = await screen.findByRole('table', { name: 'Metrics per arm' })
    const posted = api.calls.filter((c) => c.path === `${BASE}/evaluate`).at(-1)!
    expect(JSON.parse(String(posted.body))).toEqual({ source: 'held_out', limit: 5 })
    const headers = within(table).getAllByRole('columnheader').map((h) => h.textContent)
    expect(headers).toEqual(['Metric', 'Base model', 'Base + SKILL.md in context', 'Adapter (no skill in context)'])
    expect(within(table).getByRole('row', { name: /chrF 10.25 40.75 38.5/ })).toBeInTheDocument()
    expect(screen.getByRole('row', { name: /chrF 0.92/ })).toBeInTheDocument()
    const best = screen.getByRole('region', { name: 'Best examples' })
    expect(within(best).getByText('fix: correct a typo')).toBeInTheDocument()
    const worst = screen.getByRole('region', { name: 'Worst examples' })
    expect(within(worst).getByText('(empty output)')).toBeInTheDocument()
    expect(screen.queryByLabelText('Report')).not.toBeInTheDocument() // one evaluation: nothing to pick
    expect(api.unhandled).toEqual([])
  })

  it('shows a past evaluation picked from the history, then follows the latest again', async () => {
    const summary = (id: string, at: string) => ({
      evaluation_id: id, job_id: ID, status: 'succeeded', progress: 1, created_at: at,
      started_at: at, finished_at: at, error: null,
    })
    const older = { ...summary('eval-old', '2026-11-26T08:02:00Z'), report: { ...REPORT, num_examples: 7 } }
    const newer = { ...summary('eval-new', '2026-11-26T09:02:00Z'), report: { ...REPORT, num_examples: 3 } }
    const api = mockApi({
      'GET /v1/models': { body: { object: 'list', data: [] } },
      [`GET ${BASE}/status`]: { body: status({ status: 'succeeded', progress: 1 }) },
      [`GET ${BASE}/metrics`]: { body: { points: [], next: 0 } },
      [`GET ${BASE}/logs`]: { body: { lines: [], next: 0 } },
      [`GET ${BASE}/checkpoints`]: { body: { data: [], count: 0 } },
      [`GET ${BASE}/events`]: { body: { data: [], next: 0 } },
      [`GET ${BASE}/dataset`]: { body: DATASET },
      [`GET ${BASE}/evaluation`]: { body: newer },
      [`GET ${BASE}/evaluations`]: {
        body: { data: [summary('eval-new', '2026-11-26T09:02:00Z'), summary('eval-old', '2026-11-26T08:02:00Z')], count: 2 },
      },
      [`GET ${BASE}/evaluations/eval-old`]: { body: older },
    })
    const user = userEvent.setup()
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)
    expect(await screen.findByText(/^3 examples from the held-out split/)).toBeInTheDocument()
    const picker = await screen.findByLabelText('Report')
    expect(within(picker).getAllByRole('option').map((o) => o.textContent)).toEqual([
      expect.stringContaining('eval-new · succeeded (latest)'),
      expect.stringContaining('eval-old · succeeded'),
    ])
    await user.selectOptions(picker, 'eval-old')
    expect(await screen.findByText(/^7 examples from the held-out split/)).toBeInTheDocument()
    expect(api.count('GET', `${BASE}/evaluations/eval-old`)).toBe(1)
    await user.selectOptions(screen.getByLabelText('Report'), 'eval-new')
    expect(await screen.findByText(/^3 examples from the held-out split/)).toBeInTheDocument()
    expect(api.unhandled).toEqual([])
  })
})

describe('lossRows', () => {
  it('puts the training and validation loss of a step on one row, in step order', () => {
    const rows = lossRows([
      point(2, 2),
      point(1, 1),
      point(3, 2, { loss: null, eval_loss: 2.5 }),
      point(4, 3, { loss: null, eval_loss: null }),
    ])
    expect(rows).toEqual([
      { step: 1, loss: 2.9, eval_loss: null },
      { step: 2, loss: 2.8, eval_loss: 2.5 },
    ])
  })
})
