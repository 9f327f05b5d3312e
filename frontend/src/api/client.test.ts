import { afterEach, describe, expect, it, vi } from 'vitest'
import { apiError, mockApi } from '../test/api'
import { ApiError, api } from './client'

afterEach(() => vi.unstubAllGlobals())

describe('the API client', () => {
  it('turns an API error into an ApiError with the API\'s code and message', async () => {
    mockApi({ 'GET /api/training/train-00/status': apiError(404, 'job_not_found', 'No job train-00') })
    const error = await api.status('train-00').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 404, code: 'job_not_found', message: 'No job train-00' })
  })

  it('names the HTTP status when the answer is not the API\'s JSON', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('<html>Bad Gateway</html>', { status: 502, statusText: 'Bad Gateway' })))
    await expect(api.jobs(10, 0)).rejects.toMatchObject({ code: 'http_error', message: 'HTTP 502 Bad Gateway' })
  })

  it('says so when the service cannot be reached', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    await expect(api.config()).rejects.toMatchObject({ code: 'network_error' })
  })

  it('sends a path as JSON and a file as multipart', async () => {
    const mock = mockApi({ 'POST /api/training/start': { status: 202, body: { job_id: 'train-1', status: 'queued' } } })
    await api.startTraining({ kind: 'path', path: 'a/SKILL.md' }, { num_epochs: 2 })
    expect(JSON.parse(String(mock.calls[0].body))).toEqual({ skill_path: 'a/SKILL.md', num_epochs: 2 })
    const file = new File(['---\nname: a\n---\n'], 'SKILL.md')
    await api.startTraining({ kind: 'file', file }, { num_epochs: 2, target_modules: ['q_proj', 'v_proj'] })
    const form = mock.calls[1].body as FormData
    expect(form.get('num_epochs')).toBe('2')
    expect(form.get('target_modules')).toBe('q_proj,v_proj')
    expect((form.get('file') as File).name).toBe('SKILL.md')
  })

  it('reads a missing evaluation as none', async () => {
    mockApi({ 'GET /api/training/train-1/evaluation': apiError(404, 'evaluation_not_found', 'none yet') })
    await expect(api.evaluation('train-1')).resolves.toBeNull()
  })
})
