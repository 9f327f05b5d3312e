import type { ServerConfig } from '../../api/types'
import { ADVANCED_FIELDS, GUIDE_FIELDS, NOTIFY_FIELDS, type FieldSpec, type FormErrors, type FormValues } from './params'

interface Props {
  config: ServerConfig
  values: FormValues
  errors: FormErrors
  onChange: (name: string, value: string) => void
}

function Field({ field, config, values, errors, onChange }: Props & { field: FieldSpec }) {
  const id = `param-${field.name}`
  const error = errors[field.name]
  const value = values[field.name] ?? ''
  const disabled = field.name === 'quant_bits' && values.adapter_type !== 'qlora'
  const described = `${id}-help${error ? ` ${id}-error` : ''}`
  const common = {
    id,
    name: field.name,
    value,
    disabled,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': described,
  }
  let input
  if (field.kind === 'choice') {
    input = (
      <select {...common} onChange={(e) => onChange(field.name, e.target.value)}>
        {field.choices?.map((c) => (
          <option key={c.value} value={c.value}>
            {c.label}
          </option>
        ))}
      </select>
    )
  } else if (field.kind === 'tristate') {
    input = (
      <select {...common} onChange={(e) => onChange(field.name, e.target.value)}>
        <option value="">Server default</option>
        <option value="true">On</option>
        <option value="false">Off</option>
      </select>
    )
  } else {
    const max = field.name === 'max_seq_length' ? (config.model_max_length ?? undefined) : field.max
    input = (
      <input
        {...common}
        type={field.kind === 'text' ? 'text' : 'number'}
        inputMode={field.kind === 'int' ? 'numeric' : field.kind === 'float' ? 'decimal' : undefined}
        step={field.kind === 'int' ? 1 : field.step}
        min={field.kind === 'text' ? undefined : field.min}
        max={field.kind === 'text' ? undefined : max}
        placeholder={field.optional ? 'server default' : undefined}
        onChange={(e) => onChange(field.name, e.target.value)}
      />
    )
  }
  return (
    <div className={`field${error ? ' field-invalid' : ''}`}>
      <label htmlFor={id}>{field.label}</label>
      {input}
      <small id={`${id}-help`} className="help">
        {field.help}
        {config.ranges[field.name] ? ` Allowed: ${config.ranges[field.name]}.` : ''}
      </small>
      {error ? (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      ) : null}
    </div>
  )
}

/** Every hyper-parameter, starting from the server's configured defaults. */
export function ParamsForm(props: Props) {
  return (
    <>
      <fieldset className="params">
        <legend>Hyper-parameters</legend>
        <div className="field-grid">
          {GUIDE_FIELDS.map((field) => (
            <Field key={field.name} field={field} {...props} />
          ))}
        </div>
      </fieldset>
      <details className="advanced">
        <summary>Advanced options</summary>
        <fieldset className="params">
          <legend className="sr-only">Advanced options</legend>
          <div className="field-grid">
            {ADVANCED_FIELDS.map((field) => (
              <Field key={field.name} field={field} {...props} />
            ))}
          </div>
        </fieldset>
      </details>
      <details className="advanced">
        <summary>Notifications and trackers</summary>
        <fieldset className="params">
          <legend className="sr-only">Notifications and trackers</legend>
          <div className="field-grid">
            {NOTIFY_FIELDS.map((field) => (
              <Field key={field.name} field={field} {...props} />
            ))}
          </div>
        </fieldset>
      </details>
    </>
  )
}
