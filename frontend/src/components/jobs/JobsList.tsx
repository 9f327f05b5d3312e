import { useState } from 'react'
import { Link } from 'react-router-dom'
import { useJobs } from '../../api/queries'
import { isTerminal } from '../../api/types'
import { formatNumber, formatTime } from '../../lib/format'
import { ErrorMessage } from '../common/ErrorMessage'
import { ProgressBar } from '../common/ProgressBar'
import { StatusBadge } from '../common/StatusBadge'

const PAGE = 25

/** Every job, newest first; it refreshes itself while any job on the page is queued or running. */
export function JobsList() {
  const [offset, setOffset] = useState(0)
  const jobs = useJobs(PAGE, offset)
  const active = jobs.data?.data.some((job) => !isTerminal(job.status)) ?? false
  const count = jobs.data?.count ?? 0

  return (
    <div>
      <div className="heading-row">
        <h1>Jobs</h1>
        <span className="muted" role="status">
          {jobs.isFetching ? 'Refreshing…' : active ? 'Live: refreshing while jobs are active' : 'Up to date'}
        </span>
        <button type="button" className="secondary" onClick={() => void jobs.refetch()}>
          Refresh
        </button>
      </div>
      <ErrorMessage error={jobs.error} title="Could not load the jobs" />
      {jobs.isPending ? <p role="status">Loading jobs…</p> : null}
      {jobs.data && jobs.data.data.length === 0 ? (
        <p>
          No jobs yet. <Link to="/">Start one from the Training tab.</Link>
        </p>
      ) : null}
      {jobs.data && jobs.data.data.length > 0 ? (
        <div className="table-wrap">
          <table className="jobs">
            <caption className="sr-only">Training jobs, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Skill</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Started</th>
                <th scope="col">Progress</th>
                <th scope="col">Epoch</th>
                <th scope="col">Loss</th>
              </tr>
            </thead>
            <tbody>
              {jobs.data.data.map((job) => (
                <tr key={job.job_id}>
                  <td>
                    <Link to={`/jobs/${job.job_id}`}>
                      <code>{job.job_id}</code>
                    </Link>
                  </td>
                  <td>{job.skill_name}</td>
                  <td>
                    <StatusBadge status={job.status} />
                    {job.error ? (
                      <div className="cell-error" title={job.error.message}>
                        {job.error.code}
                      </div>
                    ) : null}
                  </td>
                  <td>{formatTime(job.created_at)}</td>
                  <td>{formatTime(job.started_at)}</td>
                  <td className="progress-cell">
                    <ProgressBar value={job.progress} label={`Progress of ${job.job_id}`} />
                    <span className="progress-text">{Math.round(job.progress * 100)}%</span>
                  </td>
                  <td>
                    {job.current_epoch}/{job.total_epochs}
                  </td>
                  <td>{formatNumber(job.loss)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {count > PAGE ? (
        <nav className="pager" aria-label="Pages of jobs">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
            Newer
          </button>
          <span>
            {offset + 1}–{Math.min(offset + PAGE, count)} of {count}
          </span>
          <button type="button" disabled={offset + PAGE >= count} onClick={() => setOffset(offset + PAGE)}>
            Older
          </button>
        </nav>
      ) : null}
    </div>
  )
}
