// The training parameters: how the form shows them, checks them and sends them. Every field, label, range,
// help text and default comes from GET /api/config (`parameters`, declared once in backend core/params.py);
// the server checks again and its message wins.

import type { ParamSpec, ServerConfig, TrainingRequest } from '../../api/types'

export type FieldSpec = ParamSpec

export type FormValues = Record<string, string>
export type FormErrors = Record<string, string>

export const GROUPS: { group: ParamSpec['group']; title: string; collapsed: boolean }[] = [
  { group: 'guide', title: 'Hyper-parameters', collapsed: false },
  { group: 'advanced', title: 'Advanced options', collapsed: true },
  { group: 'notify', title: 'Notifications and trackers', collapsed: true },
]

export function fieldsOf(config: ServerConfig, group?: ParamSpec['group']): FieldSpec[] {
  return config.parameters.filter((field) => group === undefined || field.group === group)
}

/** A field that may stay blank: the server's configured default applies. The main group starts filled in. */
export function isOptional(field: FieldSpec): boolean {
  return field.group !== 'guide' || field.default === null
}

/** Whether the field is read with these values (quant_bits only for QLoRA, distill settings only for distill). */
export function applies(field: FieldSpec, values: FormValues): boolean {
  return Object.entries(field.only_when).every(([name, wanted]) => values[name] === wanted)
}

export function initialValues(config: ServerConfig): FormValues {
  const defaults = config.defaults as Record<string, unknown>
  const values: FormValues = {}
  for (const field of config.parameters) {
    const value = defaults[field.name]
    values[field.name] = isOptional(field) || value === undefined || value === null ? '' : String(value)
  }
  return values
}

/** The largest value allowed; max_seq_length is also bounded by the model's context length. */
export function maxFor(field: FieldSpec, config: ServerConfig | undefined): number | undefined {
  const max = field.max ?? undefined
  if (field.name === 'max_seq_length' && config?.model_max_length != null) {
    return max === undefined ? config.model_max_length : Math.min(max, config.model_max_length)
  }
  return max
}

function describeRange(field: FieldSpec, max: number | undefined): string {
  const kind = field.kind === 'int' ? 'a whole number' : 'a number'
  const min = field.min ?? undefined
  const low = min === undefined ? '' : field.min_exclusive ? `greater than ${min}` : `at least ${min}`
  const high = max === undefined ? '' : field.max_exclusive ? `less than ${max}` : `at most ${max}`
  return [kind, [low, high].filter(Boolean).join(' and ')].filter(Boolean).join(' ')
}

function isChoice(field: FieldSpec, text: string): boolean {
  return field.choices.some((choice) => String(choice.value) === text)
}

export function validateField(field: FieldSpec, raw: string, config?: ServerConfig): string | null {
  const text = raw.trim()
  if (text === '') return isOptional(field) ? null : `${field.label} is required`
  if (field.kind === 'int' || field.kind === 'float') {
    const value = Number(text)
    const max = maxFor(field, config)
    const min = field.min ?? undefined
    const wrong = `${field.label} must be ${describeRange(field, max)}`
    if (!Number.isFinite(value)) return wrong
    if (field.kind === 'int' && !Number.isInteger(value)) return wrong
    if (min !== undefined && (field.min_exclusive ? value <= min : value < min)) return wrong
    if (max !== undefined && (field.max_exclusive ? value >= max : value > max)) return wrong
  }
  if (field.pattern && !isChoice(field, text)) {
    const pattern = new RegExp(field.pattern)
    const items = field.kind === 'list' ? text.split(',').map((item) => item.trim()) : [text]
    if (items.some((item) => !pattern.test(item))) return `${field.label} must be ${field.allowed}`
  }
  if (field.name === 'webhook_url' && !/^https?:\/\/[^/\s]+/i.test(text)) {
    return 'Webhook URL must be an http:// or https:// address'
  }
  return null
}

export function validate(values: FormValues, config: ServerConfig): FormErrors {
  const errors: FormErrors = {}
  for (const field of config.parameters) {
    if (!applies(field, values)) continue
    const error = validateField(field, values[field.name] ?? '', config)
    if (error) errors[field.name] = error
  }
  return errors
}

function typed(field: FieldSpec, text: string): unknown {
  if (field.kind === 'int' || field.kind === 'float') return Number(text)
  if (field.kind === 'tristate') return text === 'true'
  const choice = field.choices.find((c) => String(c.value) === text)
  if (choice) return choice.value // 4 and 8 stay numbers
  if (field.kind === 'list') return text.split(',').map((item) => item.trim()).filter(Boolean)
  return text
}

/** The request's training parameters, typed for JSON; blank optional fields are left to the server. */
export function toParams(values: FormValues, config: ServerConfig): TrainingRequest {
  const params: Record<string, unknown> = {}
  for (const field of config.parameters) {
    const text = (values[field.name] ?? '').trim()
    if (text === '' || !applies(field, values)) continue
    params[field.name] = typed(field, text)
  }
  return params as TrainingRequest
}
