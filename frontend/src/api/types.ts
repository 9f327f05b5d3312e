// Shapes of the service's JSON. Where a route declares its answer (a response model), the type is generated
// from the OpenAPI schema into ./schema.ts (`npm run gen:types`; never edit that file by hand). The shapes
// below the generated ones are answers the server returns as free-form JSON; they follow docs/api.md.

import type { components, operations } from './schema'

type Schemas = components['schemas']

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'
export const TERMINAL_STATES: readonly string[] = ['succeeded', 'failed', 'cancelled']

export function isTerminal(status: string | undefined): boolean {
  return status !== undefined && TERMINAL_STATES.includes(status)
}

// ---- generated from the OpenAPI schema ----------------------------------------------------------------

export type ErrorBody = Schemas['ErrorBody']
export type JobCreated = Schemas['JobCreated']
export type JobSummary = Schemas['JobSummary']
export type JobsPage = Schemas['JobsPublic']
export type JobStatus = Schemas['JobStatus']
export type LogLine = Schemas['LogLinePublic']
export type LogsPage = Schemas['LogsPage']
export type MetricPoint = Schemas['MetricPointPublic']
export type MetricsPage = Schemas['MetricsPage']
export type Checkpoint = Schemas['CheckpointPublic']
export type CheckpointsPage = Schemas['CheckpointsPublic']
/** One typed event of a job's life (GET /api/training/{id}/events). */
export type JobEvent = Schemas['JobEventPublic']
export type EventsPage = Schemas['EventsPage']
export type EvaluationCreated = Schemas['EvaluationCreated']
/** The base model jobs train, as GET /api/config and /api/health describe it (resolution only). */
export type BaseModel = Schemas['BaseModelInfo']
/** GET /api/config: every training parameter's default, range and form (backend core/params.py). */
export type ServerConfig = Schemas['ServerConfig']
export type ParamSpec = Schemas['ParamSpec']
/** The training parameters of POST /api/training/start (its JSON body less skill_path). */
export type TrainingRequest = Omit<
  NonNullable<operations['start_training_api_training_start_post']['requestBody']>['content']['application/json'],
  'skill_path'
>

// ---- free-form answers (no response model on the server) ----------------------------------------------

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
