import type { EvaluateOptions } from '../../api/client'

export interface EvaluateForm {
  source: '' | 'held_out' | 'evals'
  limit: string
  max_new_tokens: string
}

export const EMPTY_EVALUATE_FORM: EvaluateForm = { source: '', limit: '', max_new_tokens: '' }

export const LIMITS = {
  limit: { label: 'Examples', min: 1, max: 1000 },
  max_new_tokens: { label: 'Max new tokens', min: 1, max: 4096 },
} as const

/** Per-field messages for values the API would refuse (blank fields are left to the server). */
export function evaluateErrors(form: EvaluateForm): Partial<Record<keyof EvaluateForm, string>> {
  const errors: Partial<Record<keyof EvaluateForm, string>> = {}
  for (const key of ['limit', 'max_new_tokens'] as const) {
    const text = form[key].trim()
    if (!text) continue
    const value = Number(text)
    const { label, min, max } = LIMITS[key]
    if (!Number.isInteger(value) || value < min || value > max) {
      errors[key] = `${label} must be a whole number from ${min} to ${max}`
    }
  }
  return errors
}

export function toEvaluateOptions(form: EvaluateForm): EvaluateOptions {
  const options: EvaluateOptions = {}
  if (form.source) options.source = form.source
  if (form.limit.trim()) options.limit = Number(form.limit)
  if (form.max_new_tokens.trim()) options.max_new_tokens = Number(form.max_new_tokens)
  return options
}
