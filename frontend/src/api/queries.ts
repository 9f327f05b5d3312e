// Query keys and hooks. Polling runs only while something can still change and stops in terminal states.

import { useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query'
import { api, ApiError } from './client'
import { isTerminal, type JobEvent, type LogLine, type MetricPoint } from './types'

export const POLL_MS = 1500
export const LOG_TAIL = 2000

export const jobKeys = {
  all: ['jobs'] as const,
  lists: () => [...jobKeys.all, 'list'] as const,
  list: (limit: number, offset: number) => [...jobKeys.lists(), { limit, offset }] as const,
  detail: (id: string) => [...jobKeys.all, 'detail', id] as const,
  status: (id: string) => [...jobKeys.detail(id), 'status'] as const,
  metrics: (id: string) => [...jobKeys.detail(id), 'metrics'] as const,
  logs: (id: string) => [...jobKeys.detail(id), 'logs'] as const,
  checkpoints: (id: string) => [...jobKeys.detail(id), 'checkpoints'] as const,
  events: (id: string) => [...jobKeys.detail(id), 'events'] as const,
  dataset: (id: string) => [...jobKeys.detail(id), 'dataset'] as const,
  evaluation: (id: string) => [...jobKeys.detail(id), 'evaluation'] as const,
  evaluationById: (id: string, evaluationId: string | null) =>
    [...jobKeys.evaluation(id), { evaluationId }] as const,
  evaluations: (id: string) => [...jobKeys.evaluation(id), 'history'] as const,
}

export const systemKeys = {
  config: ['config'] as const,
  skills: ['skills'] as const,
}

/** After a failed poll: try again more slowly, unless the thing is gone (404) and never coming back. */
function retryInterval(error: unknown): number | false {
  return error instanceof ApiError && error.status === 404 ? false : POLL_MS * 3
}

export function useServerConfig() {
  return useQuery({ queryKey: systemKeys.config, queryFn: api.config, staleTime: Infinity })
}

export function useSkills() {
  return useQuery({ queryKey: systemKeys.skills, queryFn: api.skills, staleTime: 30_000 })
}

export function useJobs(limit: number, offset: number) {
  return useQuery({
    queryKey: jobKeys.list(limit, offset),
    queryFn: () => api.jobs(limit, offset),
    refetchInterval: (query) =>
      query.state.data?.data.some((job) => !isTerminal(job.status)) ? POLL_MS : false,
  })
}

export function useJobStatus(jobId: string) {
  return useQuery({
    queryKey: jobKeys.status(jobId),
    queryFn: () => api.status(jobId),
    refetchInterval: (query) => {
      if (isTerminal(query.state.data?.status)) return false
      return query.state.status === 'error' ? retryInterval(query.state.error) : POLL_MS
    },
  })
}

/** Items fetched so far and the cursor to pass back as `after`. */
export interface Feed<T> {
  items: T[]
  next: number
}

/**
 * Fetch only what is new since the cursor held in the cache, and append it. `keep` bounds the list
 * (the log tail); a full page means there is more, so it keeps reading until it has caught up.
 */
async function readFeed<T>(
  client: QueryClient,
  key: readonly unknown[],
  page: (after: number) => Promise<{ items: T[]; next: number; limit: number }>,
  keep?: number,
): Promise<Feed<T>> {
  const previous = client.getQueryData<Feed<T>>(key) ?? { items: [], next: 0 }
  let items = previous.items
  let next = previous.next
  for (let round = 0; round < 50; round++) {
    const got = await page(next)
    items = got.items.length ? [...items, ...got.items] : items
    next = got.next
    if (got.items.length < got.limit) break
  }
  if (keep !== undefined && items.length > keep) items = items.slice(items.length - keep)
  return { items, next }
}

export function useMetrics(jobId: string, live: boolean) {
  const client = useQueryClient()
  const key = jobKeys.metrics(jobId)
  return useQuery({
    queryKey: key,
    queryFn: () =>
      readFeed<MetricPoint>(client, key, async (after) => {
        const limit = 5000
        const page = await api.metrics(jobId, after, limit)
        return { items: page.points, next: page.next, limit }
      }),
    refetchInterval: live ? POLL_MS : false,
  })
}

export function useLogs(jobId: string, live: boolean) {
  const client = useQueryClient()
  const key = jobKeys.logs(jobId)
  return useQuery({
    queryKey: key,
    queryFn: () =>
      readFeed<LogLine>(
        client,
        key,
        async (after) => {
          const limit = 1000
          const page = await api.logs(jobId, after, limit)
          return { items: page.lines, next: page.next, limit }
        },
        LOG_TAIL,
      ),
    refetchInterval: live ? POLL_MS : false,
  })
}

/** The job's events, oldest first; only new ones are fetched on each poll. */
export function useEvents(jobId: string, live: boolean) {
  const client = useQueryClient()
  const key = jobKeys.events(jobId)
  return useQuery({
    queryKey: key,
    queryFn: () =>
      readFeed<JobEvent>(client, key, async (after) => {
        const limit = 1000
        const page = await api.events(jobId, after, limit)
        return { items: page.data, next: page.next, limit }
      }),
    refetchInterval: live ? POLL_MS : false,
  })
}

/** The job's dataset; re-read while the job runs (a distill job writes it after its teacher stage). */
export function useDataset(jobId: string, live: boolean) {
  return useQuery({
    queryKey: jobKeys.dataset(jobId),
    queryFn: () => api.dataset(jobId),
    refetchInterval: live ? POLL_MS * 5 : false,
  })
}

export function useCheckpoints(jobId: string, live: boolean) {
  return useQuery({
    queryKey: jobKeys.checkpoints(jobId),
    queryFn: () => api.checkpoints(jobId),
    refetchInterval: live ? POLL_MS * 2 : false,
  })
}

/** The latest evaluation (``evaluationId`` null) or a past one; polls while it is queued or running. */
export function useEvaluation(jobId: string, enabled: boolean, evaluationId: string | null = null) {
  return useQuery({
    queryKey: jobKeys.evaluationById(jobId, evaluationId),
    queryFn: () => api.evaluation(jobId, evaluationId),
    enabled,
    refetchInterval: (query) => {
      const status = query.state.data?.status
      if (status !== 'queued' && status !== 'running') return false
      return query.state.status === 'error' ? retryInterval(query.state.error) : POLL_MS
    },
  })
}

/** Every evaluation of the job, newest first; read again whenever the latest one changes state. */
export function useEvaluations(jobId: string, enabled: boolean, latest: string | undefined) {
  return useQuery({
    queryKey: [...jobKeys.evaluations(jobId), latest ?? null],
    queryFn: () => api.evaluations(jobId),
    enabled,
  })
}
