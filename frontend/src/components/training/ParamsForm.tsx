import type { ServerConfig } from '../../api/types'
import {
  applies,
  fieldsOf,
  GROUPS,
  isOptional,
  maxFor,
  type FieldSpec,
  type FormErrors,
  type FormValues,
} from './params'

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
  const disabled = !applies(field, values)
  const optional = isOptional(field)
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
  const options = [...field.choices, ...field.item_choices]
  if (field.kind === 'choice' || (field.kind === 'list' && !field.pattern)) {
    input = (
      <select {...common} onChange={(e) => onChange(field.name, e.target.value)}>
        {optional ? <option value="">Server default</option> : null}
        {options.map((c) => (
          <option key={String(c.value)} value={String(c.value)}>
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
    const numeric = field.kind === 'int' || field.kind === 'float'
    input = (
      <input
        {...common}
        type={numeric ? 'number' : 'text'}
        inputMode={field.kind === 'int' ? 'numeric' : field.kind === 'float' ? 'decimal' : undefined}
        step={field.kind === 'int' ? 1 : numeric ? 'any' : undefined}
        min={numeric ? (field.min ?? undefined) : undefined}
        max={numeric ? maxFor(field, config) : undefined}
        placeholder={optional ? 'server default' : undefined}
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
        {` Allowed: ${field.allowed}.`}
      </small>
      {error ? (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      ) : null}
    </div>
  )
}

/** Every training parameter the server declares (GET /api/config), starting from its configured defaults. */
export function ParamsForm(props: Props) {
  return (
    <>
      {GROUPS.map(({ group, title, collapsed }) => {
        const fields = (
          <div className="field-grid">
            {fieldsOf(props.config, group).map((field) => (
              <Field key={field.name} field={field} {...props} />
            ))}
          </div>
        )
        return collapsed ? (
          <details className="advanced" key={group}>
            <summary>{title}</summary>
            <fieldset className="params">
              <legend className="sr-only">{title}</legend>
              {fields}
            </fieldset>
          </details>
        ) : (
          <fieldset className="params" key={group}>
            <legend>{title}</legend>
            {fields}
          </fieldset>
        )
      })}
    </>
  )
}
