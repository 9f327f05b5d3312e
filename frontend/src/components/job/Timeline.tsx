import type { JobEvent } from '../../api/types'
import { formatTime } from '../../lib/format'
import { eventTitle } from './eventTitle'

/** The job's life as a timeline: one entry per event, oldest first, coloured by level. */
export function Timeline({ events, live }: { events: JobEvent[]; live: boolean }) {
  return (
    <section className="panel" aria-labelledby="timeline-title">
      <div className="heading-row">
        <h2 id="timeline-title">Timeline</h2>
        <span className="muted">
          {events.length} event{events.length === 1 ? '' : 's'}
          {live ? ', live' : ''}
        </span>
      </div>
      {events.length === 0 ? (
        <p className="muted">No event yet.</p>
      ) : (
        <ol className="timeline" aria-label="Job events">
          {events.map((event) => (
            <li key={event.id} className={`timeline-item level-${event.level}`} data-type={event.type}>
              <time dateTime={event.time}>{formatTime(event.time)}</time>{' '}
              <strong>{eventTitle(event.type)}</strong>
              {event.level !== 'info' ? <span className="sr-only"> ({event.level})</span> : null}
              <div className="timeline-message">{event.message}</div>
            </li>
          ))}
        </ol>
      )}
    </section>
  )
}
