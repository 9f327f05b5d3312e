/** A job's or an evaluation's state as a coloured badge; the text says it, the colour only helps. */
export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{status}</span>
}
