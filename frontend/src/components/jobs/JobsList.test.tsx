import { screen, within } from '@testing-library/react'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { POLL_MS } from '../../api/queries'
import { apiError, mockApi } from '../../test/api'
import { renderAt } from '../../test/render'
import { JobsList } from './JobsList'

function job(id: string, status: string, progress: number) {
  return {
    job_id: id,
    status,
    skill_name: 'commit-messages',
    progress,
    current_epoch: 1,
    total_epochs: 3,
    loss: 2.5,
    created_at: '2026-11-26T08:00:00Z',
    started_at: status === 'queued' ? null : '2026-11-26T08:00:05Z',
    finished_at: null,
    error: status === 'failed' ? { code: 'out_of_memory', message: 'lower batch_size' } : null,
  }
}

afterEach(() => vi.unstubAllGlobals())

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('the jobs list', () => {
  it('shows jobs in the API\'s order (newest first) with badges, times and progress, and polls while one is active', async () => {
    const api = mockApi({
      'GET /api/training': { body: { data: [job('train-new', 'running', 0.45), job('train-old', 'failed', 0.1)], count: 2 } },
    })
    renderAt('/jobs', '/jobs', <JobsList />)
    const rows = await screen.findAllByRole('row')
    expect(within(rows[1]).getByRole('link')).toHaveTextContent('train-new')
    expect(within(rows[1]).getByText('running')).toHaveClass('badge-running')
    expect(within(rows[1]).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '45')
    expect(within(rows[2]).getByText('failed')).toHaveClass('badge-failed')
    expect(within(rows[2]).getByText('out_of_memory')).toBeInTheDocument()
    expect(within(rows[2]).getAllByRole('cell')[4]).not.toHaveTextContent('—')
    await wait(POLL_MS * 1.5)
    expect(api.count('GET', '/api/training')).toBeGreaterThanOrEqual(2)
  })

  it('stops polling when every job is terminal', async () => {
    const api = mockApi({
      'GET /api/training': { body: { data: [job('train-a', 'succeeded', 1), job('train-b', 'cancelled', 0.2)], count: 2 } },
    })
    renderAt('/jobs', '/jobs', <JobsList />)
    await screen.findByText('train-a')
    await wait(POLL_MS * 1.5)
    expect(api.count('GET', '/api/training')).toBe(1)
    expect(screen.getByText('Up to date')).toBeInTheDocument()
  })

  it('shows the API\'s error', async () => {
    mockApi({ 'GET /api/training': apiError(503, 'database_unavailable', 'The database is unavailable; retry shortly.') })
    renderAt('/jobs', '/jobs', <JobsList />)
    expect(await screen.findByRole('alert')).toHaveTextContent('The database is unavailable; retry shortly.')
  })
})
