// The hyper-parameters of a training job: how the form shows them, checks them and sends them.
// Ranges mirror backend/skill_adapter/schemas.py; the server checks again and its message wins.

import type { ServerConfig } from '../../api/types'

export type FieldKind = 'int' | 'float' | 'choice' | 'text' | 'tristate'

export interface FieldSpec {
  name: string
  label: string
  kind: FieldKind
  help: string
  /** Optional fields may be left blank: the server's configured default applies. */
  optional?: boolean
  choices?: { value: string; label: string }[]
  min?: number
  max?: number
  minExclusive?: boolean
  maxExclusive?: boolean
  step?: string
}

export const GUIDE_FIELDS: FieldSpec[] = [
  {
    name: 'adapter_type',
    label: 'Adapter type',
    kind: 'choice',
    help: 'LoRA trains in the model\'s precision; QLoRA quantises the base model first.',
    choices: [
      { value: 'lora', label: 'LoRA' },
      { value: 'qlora', label: 'QLoRA' },
    ],
  },
  { name: 'num_epochs', label: 'Epochs', kind: 'int', min: 1, max: 1000, help: 'Passes over the training set.' },
  {
    name: 'learning_rate',
    label: 'Learning rate',
    kind: 'float',
    min: 0,
    minExclusive: true,
    max: 1,
    step: 'any',
    help: 'Peak learning rate of the schedule.',
  },
  { name: 'batch_size', label: 'Batch size', kind: 'int', min: 1, max: 1024, help: 'Examples per device step.' },
  {
    name: 'gradient_accumulation_steps',
    label: 'Gradient accumulation steps',
    kind: 'int',
    min: 1,
    max: 1024,
    help: 'Device steps per optimizer step.',
  },
  {
    name: 'max_seq_length',
    label: 'Max sequence length',
    kind: 'int',
    min: 16,
    help: 'Longer examples are truncated.',
  },
  { name: 'lora_r', label: 'LoRA rank (r)', kind: 'int', min: 1, max: 256, help: 'Rank of the update matrices.' },
  {
    name: 'lora_alpha',
    label: 'LoRA alpha',
    kind: 'float',
    min: 0,
    minExclusive: true,
    step: 'any',
    help: 'Scale of the update (alpha / r).',
  },
  {
    name: 'lora_dropout',
    label: 'LoRA dropout',
    kind: 'float',
    min: 0,
    max: 1,
    maxExclusive: true,
    step: 'any',
    help: 'Dropout on the LoRA input.',
  },
  {
    name: 'quant_bits',
    label: 'Quantisation bits',
    kind: 'choice',
    help: 'QLoRA only.',
    choices: [
      { value: '4', label: '4-bit' },
      { value: '8', label: '8-bit' },
    ],
  },
  { name: 'save_steps', label: 'Save every N steps', kind: 'int', min: 1, help: 'Checkpoint interval.' },
  { name: 'logging_steps', label: 'Log every N steps', kind: 'int', min: 1, help: 'Metric interval.' },
  { name: 'seed', label: 'Seed', kind: 'int', min: 0, help: 'For the split, shuffling and initialisation.' },
  {
    name: 'recipe',
    label: 'Recipe',
    kind: 'choice',
    help: 'Distill: the base model reading the SKILL.md answers realistic requests and the adapter learns to answer the same way without it. Template: questions about the skill answered with its own text.',
    choices: [
      { value: 'distill', label: 'Distill' },
      { value: 'template', label: 'Template (default for now)' },
    ],
  },
  {
    name: 'distill_loss',
    label: 'Distill loss',
    kind: 'choice',
    help: 'Distill only. KL: match the prompted model token by token. SFT: learn its answers as text.',
    choices: [
      { value: 'kl', label: 'KL to the teacher' },
      { value: 'sft', label: 'SFT on teacher answers' },
    ],
  },
  {
    name: 'distill_prompts',
    label: 'Prompts written by the model',
    kind: 'int',
    min: 0,
    max: 512,
    help: 'Distill only. Requests the base model writes with the skill in context, beside the skill\'s own.',
  },
  {
    name: 'teacher_max_new_tokens',
    label: 'Teacher answer tokens',
    kind: 'int',
    min: 8,
    max: 2048,
    help: 'Distill only. Longest teacher answer.',
  },
]

export const ADVANCED_FIELDS: FieldSpec[] = [
  {
    name: 'target_modules',
    label: 'Target modules',
    kind: 'text',
    optional: true,
    help: '"all-linear" or module names separated by commas (q_proj,v_proj). Blank: server default.',
  },
  { name: 'packing', label: 'Packing', kind: 'tristate', optional: true, help: 'Pack short examples into full rows.' },
  {
    name: 'gradient_checkpointing',
    label: 'Gradient checkpointing',
    kind: 'tristate',
    optional: true,
    help: 'Saves memory, costs time. Server default: on for CUDA, off on the CPU.',
  },
  {
    name: 'eval_steps',
    label: 'Evaluate every N steps',
    kind: 'int',
    min: 1,
    optional: true,
    help: 'Blank: evaluate once per epoch only.',
  },
  {
    name: 'distill_top_k',
    label: 'KL top-k',
    kind: 'int',
    min: 0,
    max: 1024,
    optional: true,
    help: 'Distill KL only: teacher tokens compared per position (0: the whole vocabulary).',
  },
  {
    name: 'teacher_temperature',
    label: 'Teacher temperature',
    kind: 'float',
    min: 0,
    max: 2,
    step: 'any',
    optional: true,
    help: 'Distill only. 0 answers greedily (default).',
  },
]

/** Who hears about the job: a webhook receiver and an experiment tracker (docs/events.md). */
export const NOTIFY_FIELDS: FieldSpec[] = [
  {
    name: 'webhook_url',
    label: 'Webhook URL',
    kind: 'text',
    optional: true,
    help: 'A public http(s) receiver, POSTed (signed) when the job succeeds, fails or is cancelled.',
  },
  {
    name: 'webhook_checkpoints',
    label: 'Webhook on checkpoints',
    kind: 'tristate',
    optional: true,
    help: 'Also POST each saved checkpoint.',
  },
  {
    name: 'report_to',
    label: 'Experiment tracker',
    kind: 'choice',
    optional: true,
    help: 'Sends the training curves to a tracker installed on the server.',
    choices: [
      { value: '', label: 'None' },
      { value: 'tensorboard', label: 'TensorBoard' },
      { value: 'mlflow', label: 'MLflow' },
      { value: 'trackio', label: 'trackio' },
    ],
  },
]

export const ALL_FIELDS = [...GUIDE_FIELDS, ...ADVANCED_FIELDS, ...NOTIFY_FIELDS]

/** Settings that only the distill recipe reads: not checked nor sent for a template job. */
export const DISTILL_ONLY = new Set([
  'distill_loss',
  'distill_prompts',
  'teacher_max_new_tokens',
  'distill_top_k',
  'teacher_temperature',
])

export type FormValues = Record<string, string>
export type FormErrors = Record<string, string>

export function initialValues(config: ServerConfig): FormValues {
  const values: FormValues = {}
  for (const field of ALL_FIELDS) {
    const value = (config.defaults as unknown as Record<string, unknown>)[field.name]
    values[field.name] = value === undefined || value === null ? '' : String(value)
  }
  return values
}

function maxFor(field: FieldSpec, config: ServerConfig | undefined): number | undefined {
  if (field.name === 'max_seq_length') return config?.model_max_length ?? undefined
  return field.max
}

function describeRange(field: FieldSpec, max: number | undefined): string {
  const kind = field.kind === 'int' ? 'a whole number' : 'a number'
  const low = field.min === undefined ? '' : field.minExclusive ? `greater than ${field.min}` : `at least ${field.min}`
  const high = max === undefined ? '' : field.maxExclusive ? `less than ${max}` : `at most ${max}`
  return [kind, [low, high].filter(Boolean).join(' and ')].filter(Boolean).join(' ')
}

export function validateField(field: FieldSpec, raw: string, config?: ServerConfig): string | null {
  const text = raw.trim()
  if (text === '') return field.optional ? null : `${field.label} is required`
  if (field.kind === 'int' || field.kind === 'float') {
    const value = Number(text)
    const max = maxFor(field, config)
    const wrong = `${field.label} must be ${describeRange(field, max)}`
    if (!Number.isFinite(value)) return wrong
    if (field.kind === 'int' && !Number.isInteger(value)) return wrong
    if (field.min !== undefined && (field.minExclusive ? value <= field.min : value < field.min)) return wrong
    if (max !== undefined && (field.maxExclusive ? value >= max : value > max)) return wrong
  }
  if (field.kind === 'text' && field.name === 'target_modules' && text !== 'all-linear') {
    const names = text.split(',').map((name) => name.trim())
    if (names.some((name) => !/^[A-Za-z0-9_.-]+$/.test(name))) {
      return 'Target modules must be "all-linear" or names such as q_proj,v_proj separated by commas'
    }
  }
  if (field.name === 'webhook_url' && !/^https?:\/\/[^/\s]+/i.test(text)) {
    return 'Webhook URL must be an http:// or https:// address'
  }
  return null
}

export function validate(values: FormValues, config?: ServerConfig): FormErrors {
  const errors: FormErrors = {}
  for (const field of ALL_FIELDS) {
    if (field.name === 'quant_bits' && values.adapter_type !== 'qlora') continue
    if (DISTILL_ONLY.has(field.name) && values.recipe === 'template') continue
    const error = validateField(field, values[field.name] ?? '', config)
    if (error) errors[field.name] = error
  }
  return errors
}

/** The request's hyper-parameters, typed for JSON; blank optional fields are left to the server. */
export function toParams(values: FormValues): Record<string, unknown> {
  const params: Record<string, unknown> = {}
  for (const field of ALL_FIELDS) {
    const text = (values[field.name] ?? '').trim()
    if (text === '') continue
    if (field.name === 'quant_bits') {
      if (values.adapter_type === 'qlora') params.quant_bits = Number(text)
      continue
    }
    if (DISTILL_ONLY.has(field.name) && values.recipe === 'template') continue
    if (field.kind === 'int' || field.kind === 'float') params[field.name] = Number(text)
    else if (field.kind === 'tristate') params[field.name] = text === 'true'
    else if (field.name === 'report_to') params.report_to = [text]
    else if (field.name === 'target_modules')
      params[field.name] = text === 'all-linear' ? text : text.split(',').map((n) => n.trim()).filter(Boolean)
    else params[field.name] = text
  }
  return params
}
