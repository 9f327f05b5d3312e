import { QueryClient, QueryClientProvider, useQuery } from '@tanstack/react-query'
import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { api, ApiError } from '../../api/client'
import { apiError, mockApi } from '../../test/api'
import { ErrorMessage } from './ErrorMessage'
import { KeyPrompt } from './KeyPrompt'

afterEach(() => {
  vi.unstubAllGlobals()
  sessionStorage.clear()
})

function Jobs() {
  const jobs = useQuery({ queryKey: ['jobs'], queryFn: () => api.jobs(10, 0) })
  if (jobs.error) return <ErrorMessage error={jobs.error} />
  return <p>{jobs.data ? `${jobs.data.count} job(s)` : 'loading'}</p>
}

function renderWithKeyPrompt() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } })
  return render(
    <QueryClientProvider client={client}>
      <KeyPrompt />
      <Jobs />
    </QueryClientProvider>,
  )
}

describe('the API key', () => {
  it('is asked for after a 401, kept in session storage and sent on every call', async () => {
    const mock = mockApi({
      'GET /api/training': (call) =>
        call.headers.Authorization === 'Bearer sa_good'
          ? { body: { data: [], count: 0 } }
          : apiError(401, 'unauthorized', 'This server needs an API key'),
    })
    renderWithKeyPrompt()
    expect(await screen.findByRole('alert')).toHaveTextContent('Enter an API key')
    await userEvent.type(screen.getByLabelText(/API key/), 'sa_good')
    await userEvent.click(screen.getByRole('button', { name: 'Use key' }))
    expect(await screen.findByText('0 job(s)')).toBeInTheDocument()
    expect(sessionStorage.getItem('skill-adapter.api-key')).toBe('sa_good')
    expect(mock.calls.at(-1)?.headers).toMatchObject({
      Authorization: 'Bearer sa_good',
      'X-Skill-Adapter-Client': 'dashboard',
    })
    await userEvent.click(screen.getByRole('button', { name: 'Forget key' }))
    expect(sessionStorage.getItem('skill-adapter.api-key')).toBeNull()
  })

  it('shows a 429 with when to retry', async () => {
    mockApi({
      'POST /api/training/start': {
        ...apiError(429, 'rate_limited', 'The key alice submitted 30 jobs in the last minute'),
        headers: { 'Retry-After': '17' },
      },
    })
    const error = await api.startTraining({ kind: 'path', path: 'a' }, {}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    render(<ErrorMessage error={error} />)
    expect(screen.getByRole('alert')).toHaveTextContent('Try again in 17 s')
  })
})
