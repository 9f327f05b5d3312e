import type { ChatMessage, Preview } from '../../api/types'
import { sampleExamples } from './sample'
import { formatNumber } from '../../lib/format'
import { ScrollText } from '../common/ScrollText'

const SAMPLE_SIZE = 5

function text(messages: ChatMessage[]): string {
  return messages.map((m) => m.content).join('\n\n')
}

/** What a job would train on: the parsed skill, the importer's findings, dataset statistics, sample examples. */
export function PreviewPanel({ preview }: { preview: Preview }) {
  const { skill, findings, dataset_stats: stats, examples } = preview
  const generators = Object.keys({ ...stats.by_generator.train, ...stats.by_generator.held_out })
  const tokens = stats.tokens.all
  return (
    <section className="panel preview" aria-labelledby="preview-title">
      <h2 id="preview-title">Preview: {skill.name}</h2>
      <p className="description">{skill.description}</p>
      <dl className="facts">
        <div>
          <dt>Source</dt>
          <dd>{skill.source}</dd>
        </div>
        <div>
          <dt>License</dt>
          <dd>{skill.license ?? '—'}</dd>
        </div>
        <div>
          <dt>Sections</dt>
          <dd>{skill.sections.length}</dd>
        </div>
        <div>
          <dt>References</dt>
          <dd>{skill.references.length}</dd>
        </div>
        <div>
          <dt>Base model</dt>
          <dd className="wrap">{preview.model}</dd>
        </div>
      </dl>

      <h3>Findings</h3>
      {findings.length === 0 ? (
        <p className="muted">The importer found nothing to report.</p>
      ) : (
        <ul className="findings">
          {findings.map((f, i) => (
            <li key={`${f.code}-${i}`}>
              <span className={`badge badge-${f.severity}`}>{f.severity}</span> {f.message}
              {f.line ? <span className="muted"> (line {f.line})</span> : null} <code>{f.code}</code>
            </li>
          ))}
        </ul>
      )}

      <h3>Dataset</h3>
      <div className="stat-row">
        <div className="stat">
          <span className="stat-value">{stats.train_examples}</span>
          <span className="stat-label">training examples</span>
        </div>
        <div className="stat">
          <span className="stat-value">{stats.held_out_examples}</span>
          <span className="stat-label">held-out examples</span>
        </div>
        <div className="stat">
          <span className="stat-value">{tokens ? formatNumber(tokens.mean, 3) : '—'}</span>
          <span className="stat-label">mean tokens{stats.tokens.exact ? '' : ' (estimated)'}</span>
        </div>
        <div className="stat">
          <span className="stat-value">{tokens ? tokens.max : '—'}</span>
          <span className="stat-label">max tokens (limit {stats.max_seq_length})</span>
        </div>
      </div>
      {stats.over_max_seq_length > 0 ? (
        <p className="warning" role="status">
          {stats.over_max_seq_length} example(s) are longer than the max sequence length and will be truncated.
        </p>
      ) : null}
      <table className="compact">
        <caption>Examples per generator</caption>
        <thead>
          <tr>
            <th scope="col">Generator</th>
            <th scope="col">Train</th>
            <th scope="col">Held out</th>
          </tr>
        </thead>
        <tbody>
          {generators.map((g) => (
            <tr key={g}>
              <th scope="row">{g}</th>
              <td>{stats.by_generator.train?.[g] ?? 0}</td>
              <td>{stats.by_generator.held_out?.[g] ?? 0}</td>
            </tr>
          ))}
        </tbody>
      </table>

      {preview.recipe === 'distill' && preview.distill ? (
        <>
          <h3>
            Distill prompts{' '}
            <span className="muted">
              ({preview.distill.prompts.length} known, {preview.distill.model_written_prompts} more written by the base
              model; the teacher answers them when the job runs)
            </span>
          </h3>
          {preview.distill.skill_truncated_for_teacher ? (
            <p role="note">
              The SKILL.md ({preview.distill.skill_tokens} tokens) does not fit the teacher's context (
              {preview.distill.teacher_context_tokens}): the teacher will see it truncated.
            </p>
          ) : null}
          <ul className="examples">
            {preview.distill.prompts.slice(0, SAMPLE_SIZE).map((p, i) => (
              <li key={i}>
                <span className="tag">{p.source}</span> <span className="tag">{p.split}</span> {p.prompt}
              </li>
            ))}
          </ul>
        </>
      ) : null}

      <h3>
        {preview.recipe === 'distill' ? 'Template examples (recipe template)' : 'Sample examples'}{' '}
        <span className="muted">
          ({Math.min(SAMPLE_SIZE, examples.length)} of the {examples.length} the preview returned, taking each generator in turn)
        </span>
      </h3>
      <ol className="examples">
        {sampleExamples(examples, SAMPLE_SIZE).map((ex, i) => (
          <li key={i} className="example">
            <div className="example-tags">
              <span className="tag">{ex.generator}</span>
              <span className="tag">{ex.split}</span>
              {ex.section ? <span className="tag">{ex.section}</span> : null}
            </div>
            <div className="example-turn">
              <span className="role">prompt</span>
              <ScrollText>{text(ex.prompt)}</ScrollText>
            </div>
            <div className="example-turn">
              <span className="role">completion</span>
              <ScrollText>{text(ex.completion)}</ScrollText>
            </div>
          </li>
        ))}
      </ol>
    </section>
  )
}
