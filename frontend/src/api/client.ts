// The one typed client of the service's HTTP API. Every failure becomes an ApiError that carries the
// API's own code and message ({"error": {"code", "message"}}), so the views can show them as they are.

import type {
  DatasetPage,
  CheckpointsPage,
  Evaluation,
  EvaluationsPage,
  EvaluationCreated,
  JobCreated,
  JobsPage,
  JobStatus,
  LogsPage,
  EventsPage,
  MetricsPage,
  Preview,
  ServerConfig,
  TrainingRequest,
  SkillsList,
} from './types'

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  /** Seconds the server asked to wait (Retry-After on 429 and 503), when it said. */
  readonly retryAfter: number | null

  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.retryAfter = retryAfter
  }
}

const BASE = '/api'

// The API key, kept for this browser tab only (sessionStorage: gone when the tab closes, never sent to
// another site). Servers without keys need none; a 401 makes the dashboard ask for one (KeyPrompt).
const KEY_STORAGE = 'skill-adapter.api-key'
export const KEY_NEEDED_EVENT = 'skill-adapter:key-needed'

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE)
  } catch {
    return null
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key)
    else sessionStorage.removeItem(KEY_STORAGE)
  } catch {
    // storage disabled: the key lasts until the page reloads
  }
}

/** The headers every call carries: the key when there is one, and the dashboard's own header, which a
 * browser sends cross-site only after a CORS preflight (the server refuses a state change without it). */
export function authHeaders(): Record<string, string> {
  const key = storedKey()
  const headers: Record<string, string> = { 'X-Skill-Adapter-Client': 'dashboard' }
  if (key) headers.Authorization = `Bearer ${key}`
  return headers
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response
  try {
    response = await fetch(BASE + path, {
      ...init,
      headers: { ...authHeaders(), ...((init?.headers as Record<string, string> | undefined) ?? {}) },
    })
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new ApiError(0, 'network_error', `Cannot reach the service (${reason}). Is skill-adapter serve running?`)
  }
  const text = await response.text()
  let body: unknown = null
  if (text) {
    try {
      body = JSON.parse(text)
    } catch {
      body = null
    }
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error
    const retry = Number(response.headers.get('Retry-After'))
    const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null
    if (response.status === 401) window.dispatchEvent(new Event(KEY_NEEDED_EVENT))
    if (error && typeof error.message === 'string') {
      throw new ApiError(response.status, String(error.code ?? 'error'), error.message, retryAfter)
    }
    throw new ApiError(response.status, 'http_error', `HTTP ${response.status} ${response.statusText}`.trim())
  }
  if (body === null) {
    throw new ApiError(response.status, 'bad_response', `The service answered ${path} with something that is not JSON`)
  }
  return body as T
}

function postJson<T>(path: string, payload: unknown): Promise<T> {
  return request<T>(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(payload),
  })
}

function postForm<T>(path: string, file: File, fields: Record<string, unknown>): Promise<T> {
  const form = new FormData()
  form.append('file', file, file.name)
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue
    form.append(key, Array.isArray(value) ? value.join(',') : String(value))
  }
  return request<T>(path, { method: 'POST', body: form })
}

/** Options of POST /evaluate; omitted ones take the server's defaults. */
export interface EvaluateOptions {
  source?: 'held_out' | 'evals'
  limit?: number
  max_new_tokens?: number
}

/** A skill to train on: a path under the server's skills root, or a file from the user's disk. */
export type SkillSource = { kind: 'path'; path: string } | { kind: 'file'; file: File }

function withSkill<T>(path: string, source: SkillSource, fields: Record<string, unknown>): Promise<T> {
  return source.kind === 'file'
    ? postForm<T>(path, source.file, fields)
    : postJson<T>(path, { skill_path: source.path, ...fields })
}

export const api = {
  config: () => request<ServerConfig>('/config'),
  skills: () => request<SkillsList>('/skills'),
  preview: (source: SkillSource, fields: { seed?: number; max_seq_length?: number }) =>
    withSkill<Preview>('/skills/preview', source, fields),
  startTraining: (source: SkillSource, params: TrainingRequest) =>
    withSkill<JobCreated>('/training/start', source, params as Record<string, unknown>),
  jobs: (limit: number, offset: number) => request<JobsPage>(`/training?limit=${limit}&offset=${offset}`),
  status: (jobId: string) => request<JobStatus>(`/training/${encodeURIComponent(jobId)}/status`),
  logs: (jobId: string, after: number, limit = 1000) =>
    request<LogsPage>(`/training/${encodeURIComponent(jobId)}/logs?after=${after}&limit=${limit}`),
  metrics: (jobId: string, after: number, limit = 5000) =>
    request<MetricsPage>(`/training/${encodeURIComponent(jobId)}/metrics?after=${after}&limit=${limit}`),
  events: (jobId: string, after: number, limit = 1000) =>
    request<EventsPage>(`/training/${encodeURIComponent(jobId)}/events?after=${after}&limit=${limit}`),
  dataset: (jobId: string) => request<DatasetPage>(`/training/${encodeURIComponent(jobId)}/dataset?limit=200`),
  checkpoints: (jobId: string) => request<CheckpointsPage>(`/training/${encodeURIComponent(jobId)}/checkpoints`),
  cancel: (jobId: string) => request<JobStatus>(`/training/${encodeURIComponent(jobId)}/cancel`, { method: 'POST' }),
  cancelEvaluation: (jobId: string, evaluationId: string) =>
    request<Evaluation>(
      `/training/${encodeURIComponent(jobId)}/evaluations/${encodeURIComponent(evaluationId)}/cancel`,
      { method: 'POST' },
    ),
  evaluate: (jobId: string, body: EvaluateOptions = {}) =>
    postJson<EvaluationCreated>(`/training/${encodeURIComponent(jobId)}/evaluate`, body),
  evaluation: async (jobId: string, evaluationId: string | null = null): Promise<Evaluation | null> => {
    const job = `/training/${encodeURIComponent(jobId)}`
    try {
      return await request<Evaluation>(
        evaluationId === null ? `${job}/evaluation` : `${job}/evaluations/${encodeURIComponent(evaluationId)}`,
      )
    } catch (err) {
      if (err instanceof ApiError && err.code === 'evaluation_not_found') return null
      throw err
    }
  },
  evaluations: (jobId: string) => request<EvaluationsPage>(`/training/${encodeURIComponent(jobId)}/evaluations`),
}
