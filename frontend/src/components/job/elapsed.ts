import { useEffect, useState } from 'react'
import type { JobSummary } from '../../api/types'

/**
 * A job's elapsed time, in seconds: from `started_at` (when a worker claimed it, so starting the training
 * process, imports and loading the model all count; the trainer's own clock starts only after them) to
 * `finished_at`, or to `nowMs` while it runs. Time spent queued is not included. Null before it started.
 */
export function jobElapsedSeconds(job: Pick<JobSummary, 'started_at' | 'finished_at'>, nowMs: number): number | null {
  if (!job.started_at) return null
  const start = Date.parse(job.started_at)
  const end = job.finished_at ? Date.parse(job.finished_at) : nowMs
  if (Number.isNaN(start) || Number.isNaN(end)) return null
  return Math.max(0, (end - start) / 1000)
}

/** The current time, refreshed every `intervalMs` while `ticking` (a running job's elapsed time moves). */
export function useNow(ticking: boolean, intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    if (!ticking) return
    const timer = setInterval(() => setNow(Date.now()), intervalMs)
    return () => clearInterval(timer)
  }, [ticking, intervalMs])
  return now
}
