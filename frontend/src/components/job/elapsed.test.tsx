import { screen } from '@testing-library/react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { apiError, mockApi } from '../../test/api'
import { renderAt } from '../../test/render'
import { jobElapsedSeconds } from './elapsed'
import { JobPage } from './JobPage'

const ID = 'train-elapsed1'
const BASE = `/api/training/${ID}`

function status(overrides: Record<string, unknown> = {}) {
  return {
    job_id: ID, status: 'succeeded', progress: 1, current_epoch: 3, total_epochs: 3, loss: 7.16, step: 9,
    total_steps: 9, learning_rate: null, eval_loss: null, eta_seconds: null, attempts: 1,
    skill_name: 'commit-messages', adapter_path: '/c/final', error: null, config: {},
    created_at: '2026-12-02T17:00:00Z', started_at: '2026-12-02T17:00:10Z', finished_at: '2026-12-02T17:01:55Z',
    ...overrides,
  } // prettier-ignore
}

afterEach(() => vi.unstubAllGlobals())

describe('jobElapsedSeconds', () => {
  const now = Date.parse('2026-12-02T17:05:00Z')

  it('runs from the start (claim by a worker) to the end, start-up included, queue time not', () => {
    expect(jobElapsedSeconds(status(), now)).toBe(105)
  })

  it('runs to now while the job runs, and is unknown before it starts', () => {
    expect(jobElapsedSeconds(status({ finished_at: null }), now)).toBe(290)
    expect(jobElapsedSeconds(status({ started_at: null, finished_at: null }), now)).toBeNull()
    // a job cancelled while queued never started
    expect(jobElapsedSeconds(status({ started_at: null }), now)).toBeNull()
  })

  it('never goes negative when the browser clock is behind the server', () => {
    expect(jobElapsedSeconds(status({ finished_at: null }), Date.parse('2026-12-02T17:00:00Z'))).toBe(0)
  })
})

describe('the job page', () => {
  it('shows elapsed time from the job start, not the trainer clock that starts after model loading', async () => {
    mockApi({
      [`GET ${BASE}/status`]: { body: status() },
      [`GET ${BASE}/metrics`]: {
        // The trainer's clock says 30 s: it started after the process start-up and the model load.
        body: { points: [{ id: 1, ts: '2026-12-02T17:01:50Z', step: 9, epoch: 3, loss: 7.16, eval_loss: null,
          learning_rate: null, grad_norm: null, tokens_per_second: 50, elapsed_seconds: 30, eta_seconds: 0,
          gpu_utilization: null, gpu_memory_mb: null }], next: 1 }, // prettier-ignore
      },
      [`GET ${BASE}/logs`]: { body: { lines: [], next: 0 } },
      [`GET ${BASE}/checkpoints`]: { body: { data: [], count: 0 } },
      [`GET ${BASE}/events`]: { body: { data: [], next: 0 } },
      [`GET ${BASE}/evaluation`]: apiError(404, 'evaluation_not_found', 'No evaluation yet'),
      [`GET ${BASE}/evaluations`]: { body: { data: [], count: 0 } },
    })
    renderAt(`/jobs/${ID}`, '/jobs/:jobId', <JobPage />)
    const label = await screen.findByText('elapsed since start')
    expect(label.previousElementSibling).toHaveTextContent('1 min 45 s')
    expect(label.parentElement).toHaveAttribute('title', expect.stringMatching(/includes starting the training process and loading the model/))
  })
})
