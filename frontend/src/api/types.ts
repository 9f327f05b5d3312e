// Shapes of the service's JSON, as documented in docs/api.md and backend/skill_adapter/schemas.py.

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'
export const TERMINAL_STATES: readonly string[] = ['succeeded', 'failed', 'cancelled']

export function isTerminal(status: string | undefined): boolean {
  return status !== undefined && TERMINAL_STATES.includes(status)
}

export interface ErrorBody {
  code: string
  message: string
}

export interface JobCreated {
  job_id: string
  status: JobState
  created_at: string
}

export interface JobSummary {
  job_id: string
  status: JobState
  skill_name: string
  progress: number
  current_epoch: number
  total_epochs: number
  loss: number | null
  created_at: string
  started_at: string | null
  finished_at: string | null
  error: ErrorBody | null
}

export interface JobsPage {
  data: JobSummary[]
  count: number
}

export interface JobStatus extends JobSummary {
  step: number
  total_steps: number | null
  learning_rate: number | null
  eval_loss: number | null
  eta_seconds: number | null
  attempts: number
  adapter_path: string | null
  config: Record<string, unknown>
}

export interface LogLine {
  id: number
  ts: string
  level: string
  message: string
}

export interface LogsPage {
  lines: LogLine[]
  next: number
}

export interface MetricPoint {
  id: number
  ts: string
  step: number
  epoch: number | null
  loss: number | null
  eval_loss: number | null
  learning_rate: number | null
  grad_norm: number | null
  tokens_per_second: number | null
  elapsed_seconds: number | null
  eta_seconds: number | null
  gpu_utilization: number | null
  gpu_memory_mb: number | null
}

export interface MetricsPage {
  points: MetricPoint[]
  next: number
}

export interface Checkpoint {
  step: number | null
  name: string
  path: string
  complete: boolean
  /** train_loss, validation_loss, train_token_accuracy, validation_token_accuracy at the step. */
  metrics?: Record<string, number>
}

/** One typed event of a job's life (GET /api/training/{id}/events). */
export interface JobEvent {
  id: number
  time: string
  level: 'info' | 'warning' | 'error' | string
  type: string
  message: string
  data: Record<string, unknown>
}

export interface EventsPage {
  data: JobEvent[]
  next: number
}

/** GET /api/training/{id}/dataset: what the job trains on, with provenance per example. */
export interface DatasetExample {
  split: string
  prompt: string
  completion: string
  source: string | null
  kind: string | null
  section: string | null
}

export interface DatasetPage {
  job_id: string
  recipe: string
  summary: {
    teacher?: Record<string, unknown>
    dropped?: Record<string, number>
    sources?: Record<string, Record<string, number>>
  } | null
  examples: DatasetExample[]
  count: number
}

export interface CheckpointsPage {
  data: Checkpoint[]
  count: number
}

/** The base model jobs train, as GET /api/config and /api/health describe it (resolution only). */
export interface BaseModel {
  name: string
  kind: 'builtin' | 'folder' | 'hub'
  path: string
  builtin: string | null
  ready: boolean
  converts_on_first_use: boolean
  parameters: number | null
  size_bytes: number | null
  title: string | null
  problem: string | null
  summary: string
}

export interface ServerConfig {
  model: string
  base_model?: BaseModel
  model_max_length: number | null
  defaults: {
    adapter_type: 'lora' | 'qlora'
    num_epochs: number
    learning_rate: number
    batch_size: number
    gradient_accumulation_steps: number
    max_seq_length: number
    lora_r: number
    lora_alpha: number
    lora_dropout: number
    quant_bits: 4 | 8
    save_steps: number
    logging_steps: number
    seed: number
    recipe: 'distill' | 'template'
    distill_loss: 'kl' | 'sft'
    distill_prompts: number
    teacher_max_new_tokens: number
    distill_top_k: number
    teacher_temperature: number
  }
  ranges: Record<string, string>
}

export interface SkillEntry {
  path: string
  name: string
}

export interface SkillsList {
  root: string
  data: SkillEntry[]
  count: number
}

export interface Finding {
  code: string
  message: string
  line: number | null
  severity: string
}

export interface SkillSection {
  title: string
  level: number
  line: number
  steps?: unknown[]
  bullets?: unknown[]
  code_blocks?: unknown[]
}

export interface ChatMessage {
  role: string
  content: string
}

export interface PreviewExample {
  prompt: ChatMessage[]
  completion: ChatMessage[]
  generator: string
  section: string | null
  kind: string
  split: string
}

export interface TokenStats {
  min: number
  max: number
  mean: number
  p50: number
  p95: number
  total: number
}

export interface DatasetStats {
  train_examples: number
  held_out_examples: number
  by_generator: Record<string, Record<string, number>>
  held_out_sections: string[]
  dropped: Record<string, number>
  tokens: { exact: boolean; tokenizer: string | null; all?: TokenStats; train?: TokenStats }
  max_seq_length: number
  over_max_seq_length: number
  seed: number
}

export interface Preview {
  skill: {
    name: string
    description: string
    license: string | null
    metadata: Record<string, unknown>
    allowed_tools: string[]
    sections: SkillSection[]
    examples: unknown[]
    references: { path: string; kind: string; exists: boolean }[]
    source: string
  }
  findings: Finding[]
  dataset_stats: DatasetStats
  examples: PreviewExample[]
  model: string
  recipe?: 'distill' | 'template'
  distill?: {
    prompts: { prompt: string; source: string; kind: string; split: string }[]
    model_written_prompts: number
    dropped: Record<string, number>
    skill_tokens: number | null
    teacher_context_tokens: number
    skill_truncated_for_teacher: boolean
    note: string
  }
}

// ---- evaluation -------------------------------------------------------------------------------

export type ArmName = 'base' | 'base_with_skill' | 'adapter'
export const ARMS: readonly ArmName[] = ['base', 'base_with_skill', 'adapter']

export interface ArmMetrics {
  perplexity: number | null
  accuracy: number | null
  bleu: number | null
  chrf: number | null
  prompt_tokens_per_call: number | null
}

export interface EvalExample {
  id: string
  prompt: string | ChatMessage[]
  reference: string
  section?: string | null
  generator?: string | null
  outputs: Partial<Record<ArmName, { output: string; perplexity: number | null; chrf: number | null }>>
}

export interface EvaluationReport {
  source: 'held_out' | 'evals_json'
  num_examples: number
  generation: { do_sample: boolean; max_new_tokens: number }
  skill_truncated: boolean
  arms: Partial<Record<ArmName, ArmMetrics>>
  /** Per metric: the share of the skill's effect the adapter reproduces; null, with a reason in words, when it means nothing. */
  internalisation: Record<string, { ratio: number | null; reason: string | null }>
  prompt_tokens_saved_per_call: number | null
  /** Plain sentences on which figures mean nothing on this run, and why (absent in reports from before they existed). */
  notes?: string[]
  /** What each arm is called in words. */
  arm_titles?: Partial<Record<ArmName, string>>
  examples: EvalExample[]
  best: string[]
  worst: string[]
}

export interface Evaluation {
  evaluation_id: string
  job_id: string
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'
  progress: number
  created_at: string
  started_at: string | null
  finished_at: string | null
  error: ErrorBody | null
  report: EvaluationReport | null
}

export interface EvaluationsPage {
  data: Omit<Evaluation, 'report'>[]
  count: number
}

export interface EvaluationCreated {
  evaluation_id: string
  job_id: string
  status: string
  created_at: string
}
