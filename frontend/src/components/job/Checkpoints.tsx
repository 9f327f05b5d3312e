import type { Checkpoint } from '../../api/types'
import { formatNumber } from '../../lib/format'

export function Checkpoints({ checkpoints }: { checkpoints: Checkpoint[] }) {
  return (
    <section className="panel" aria-labelledby="ckpt-title">
      <h2 id="ckpt-title">Checkpoints</h2>
      {checkpoints.length === 0 ? (
        <p className="muted">No checkpoint saved yet.</p>
      ) : (
        <table className="compact">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Step</th>
              <th scope="col">Train loss</th>
              <th scope="col">Validation loss</th>
              <th scope="col">Complete</th>
              <th scope="col">Path</th>
            </tr>
          </thead>
          <tbody>
            {checkpoints.map((c) => (
              <tr key={c.path}>
                <th scope="row">{c.name}</th>
                <td>{c.step ?? '—'}</td>
                <td>{formatNumber(c.metrics?.train_loss)}</td>
                <td>{formatNumber(c.metrics?.validation_loss)}</td>
                <td>{c.complete ? 'yes' : 'no'}</td>
                <td>
                  <code className="wrap">{c.path}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
