// Shapes of the service's JSON, all generated from the OpenAPI schema into ./schema.ts (`npm run gen:types`;
// never edit that file by hand): every JSON route declares its answer (tests/api/test_openapi_responses.py).
// This file only names them for the views.

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

/** GET /api/training/{id}/dataset: what the job trains on, with provenance per example. */
export type DatasetExample = Schemas['DatasetExamplePublic']
export type DatasetPage = Schemas['DatasetPublic']
/** GET /api/skills: the SKILL.md files under the skills root. */
export type SkillEntry = Schemas['SkillEntry']
export type SkillsList = Schemas['SkillsPublic']
/** POST /api/skills/preview: what a job would train on, without starting one. */
export type Preview = Schemas['PreviewPublic']
export type Finding = Schemas['FindingPublic']
export type SkillSection = Schemas['SectionPublic']
export type PreviewExample = Schemas['PreviewExample']
export type DatasetStats = Schemas['DatasetStats']
export type TokenStats = Schemas['TokenStats']
export type ChatMessage = Schemas['ChatMessagePublic']

// ---- evaluation -------------------------------------------------------------------------------

export type ArmName = 'base' | 'base_with_skill' | 'adapter'
export const ARMS: readonly ArmName[] = ['base', 'base_with_skill', 'adapter']

export type ArmMetrics = Schemas['ArmMetrics']
export type EvalExample = Schemas['EvalExamplePublic']
/** Per arm and per case; ``notes`` and ``arm_titles`` are absent in reports from before they existed. */
export type EvaluationReport = Schemas['EvaluationReport']
export type Evaluation = Schemas['EvaluationPublic']
export type EvaluationsPage = Schemas['EvaluationsPublic']
