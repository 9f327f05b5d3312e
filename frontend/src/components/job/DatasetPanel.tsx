import type { DatasetPage } from '../../api/types'

/** What the job trains on: for a distill job, the teacher's answers with where each prompt came from. */
export function DatasetPanel({ dataset }: { dataset: DatasetPage | undefined }) {
  const summary = dataset?.summary
  const teacher = summary?.teacher
  const dropped = Object.entries(summary?.dropped ?? {})
  return (
    <section className="panel" aria-labelledby="dataset-title">
      <h2 id="dataset-title">Dataset{dataset ? ` (${dataset.recipe})` : ''}</h2>
      {!dataset || dataset.count === 0 ? (
        <p className="muted">
          {dataset?.recipe === 'distill'
            ? 'The teacher (the base model with the SKILL.md as system prompt) has not written the dataset yet.'
            : 'No dataset saved yet.'}
        </p>
      ) : (
        <>
          {teacher ? (
            <p className="muted">
              Teacher: base model with the SKILL.md as system prompt, adapter disabled;{' '}
              {teacher.do_sample ? `sampled at temperature ${String(teacher.temperature)}` : 'greedy'}, up to{' '}
              {String(teacher.max_new_tokens)} new tokens
              {teacher.skill_truncated
                ? `; the SKILL.md was truncated to ${String(teacher.skill_tokens)} of ${String(teacher.skill_tokens_full)} tokens`
                : ''}
              .{dropped.length ? ` Dropped: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}.` : ''}
            </p>
          ) : null}
          <table className="compact">
            <thead>
              <tr>
                <th scope="col">Split</th>
                <th scope="col">Source</th>
                <th scope="col">Prompt</th>
                <th scope="col">Answer</th>
              </tr>
            </thead>
            <tbody>
              {dataset.examples.slice(0, 50).map((e, index) => (
                <tr key={index}>
                  <td>{e.split}</td>
                  <td>{e.source ?? '—'}</td>
                  <td className="wrap">{e.prompt}</td>
                  <td className="wrap">{e.completion.length > 300 ? `${e.completion.slice(0, 300)}…` : e.completion}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted">
            Showing {Math.min(50, dataset.examples.length)} of {dataset.count} examples.
          </p>
        </>
      )}
    </section>
  )
}
