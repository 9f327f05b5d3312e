import { evaluateErrors, LIMITS, type EvaluateForm } from './evaluateForm'

/** What Evaluate will send: which cases, how many, how long the answers may be. */
export function EvaluateOptionsForm({ form, onChange }: { form: EvaluateForm; onChange: (form: EvaluateForm) => void }) {
  const errors = evaluateErrors(form)
  return (
    <details className="eval-options">
      <summary>Evaluation options</summary>
      <div className="field-grid">
        <div className="field">
          <label htmlFor="eval-source">Cases</label>
          <select
            id="eval-source"
            value={form.source}
            onChange={(e) => onChange({ ...form, source: e.target.value as EvaluateForm['source'] })}
          >
            <option value="">Default (held-out)</option>
            <option value="held_out">Held-out split</option>
            <option value="evals">The skill's evals/evals.json</option>
          </select>
        </div>
        {(['limit', 'max_new_tokens'] as const).map((key) => (
          <div className={`field${errors[key] ? ' field-invalid' : ''}`} key={key}>
            <label htmlFor={`eval-${key}`}>{LIMITS[key].label}</label>
            <input
              id={`eval-${key}`}
              type="number"
              inputMode="numeric"
              min={LIMITS[key].min}
              max={LIMITS[key].max}
              step={1}
              placeholder={key === 'limit' ? 'all' : 'server default'}
              value={form[key]}
              aria-invalid={errors[key] ? true : undefined}
              aria-describedby={errors[key] ? `eval-${key}-error` : undefined}
              onChange={(e) => onChange({ ...form, [key]: e.target.value })}
            />
            {errors[key] ? (
              <small id={`eval-${key}-error`} className="field-error">
                {errors[key]}
              </small>
            ) : null}
          </div>
        ))}
      </div>
    </details>
  )
}
