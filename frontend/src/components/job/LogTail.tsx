import { useEffect, useRef, useState } from 'react'
import type { LogLine } from '../../api/types'

/** The newest log lines; in follow mode the view stays at the bottom as lines arrive. */
export function LogTail({ lines, live }: { lines: LogLine[]; live: boolean }) {
  const [follow, setFollow] = useState(true)
  const box = useRef<HTMLDivElement>(null)
  const lastId = lines.at(-1)?.id

  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight
  }, [follow, lastId])

  return (
    <section className="panel" aria-labelledby="logs-title">
      <div className="heading-row">
        <h2 id="logs-title">Log</h2>
        <span className="muted">
          {lines.length} line{lines.length === 1 ? '' : 's'}
          {live ? ', live' : ''}
        </span>
        <label className="checkbox">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
      </div>
      <div
        ref={box}
        className="log"
        role="log"
        aria-live="off"
        aria-label="Training log"
        tabIndex={0}
        data-testid="log-tail"
        onScroll={(e) => {
          // Scrolling up to read stops following; scrolling back to the end resumes it.
          const el = e.currentTarget
          const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 24
          if (atEnd !== follow) setFollow(atEnd)
        }}
      >
        {lines.length === 0 ? <span className="muted">No log lines yet.</span> : null}
        {lines.map((line) => (
          <div key={line.id} className={`log-line log-${line.level.toLowerCase()}`}>
            <span className="log-ts">{new Date(line.ts).toLocaleTimeString()}</span>{' '}
            <span className="log-level">{line.level}</span> {line.message}
          </div>
        ))}
      </div>
    </section>
  )
}
