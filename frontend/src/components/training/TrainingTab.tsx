import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useMemo, useState, type FormEvent } from 'react'
import { useNavigate } from 'react-router-dom'
import { api, type SkillSource } from '../../api/client'
import type { TrainingRequest } from '../../api/types'
import { jobKeys, useServerConfig } from '../../api/queries'
import { ErrorMessage } from '../common/ErrorMessage'
import { BaseModelInfo } from './BaseModelInfo'
import { ParamsForm } from './ParamsForm'
import { PreviewPanel } from './PreviewPanel'
import { SkillPicker } from './SkillPicker'
import { initialValues, toParams, validate, type FormValues } from './params'

/** The first view: choose a skill, preview it, set the hyper-parameters, start a job. */
export function TrainingTab() {
  const config = useServerConfig()
  const [source, setSource] = useState<SkillSource | null>(null)
  // Until the user edits a field the form shows the server's defaults.
  const [edited, setEdited] = useState<FormValues | null>(null)
  const values = edited ?? (config.data ? initialValues(config.data) : null)
  const navigate = useNavigate()
  const queryClient = useQueryClient()

  const errors = useMemo(() => (values && config.data ? validate(values, config.data) : {}), [values, config.data])
  const valid = Object.keys(errors).length === 0

  const preview = useMutation({
    mutationFn: (input: { source: SkillSource; seed?: number; max_seq_length?: number }) =>
      api.preview(input.source, { seed: input.seed, max_seq_length: input.max_seq_length }),
  })
  const start = useMutation({
    mutationFn: (input: { source: SkillSource; params: TrainingRequest }) =>
      api.startTraining(input.source, input.params),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: jobKeys.lists() })
      navigate(`/jobs/${created.job_id}`)
    },
  })

  const runPreview = (chosen: SkillSource) => {
    const params: TrainingRequest = values && config.data ? toParams(values, config.data) : {}
    const seed = errors.seed ? undefined : (params.seed ?? undefined)
    const maxSeq = errors.max_seq_length ? undefined : (params.max_seq_length ?? undefined)
    preview.mutate({ source: chosen, seed, max_seq_length: maxSeq })
  }

  const onSource = (chosen: SkillSource | null) => {
    setSource(chosen)
    preview.reset()
    start.reset()
    if (chosen) runPreview(chosen)
  }

  const onSubmit = (event: FormEvent) => {
    event.preventDefault()
    if (!source || !values || !valid || !config.data) return
    start.mutate({ source, params: toParams(values, config.data) })
  }

  if (config.isPending) return <p role="status">Loading the server's defaults…</p>
  if (config.isError) return <ErrorMessage error={config.error} title="Could not load the server's configuration" />

  return (
    <div className="training-tab">
      <h1>Train an adapter</h1>
      <BaseModelInfo model={config.data.base_model} fallback={config.data.model} />
      <div className="two-columns">
        <form className="panel" onSubmit={onSubmit} aria-labelledby="start-title" noValidate>
          <h2 id="start-title" className="sr-only">
            New training job
          </h2>
          <SkillPicker source={source} onChange={onSource} />
          {values ? (
            <ParamsForm
              config={config.data}
              values={values}
              errors={errors}
              onChange={(name, value) => setEdited({ ...values, [name]: value })}
            />
          ) : null}
          <ErrorMessage error={start.error} title="Training was not started" />
          <div className="actions">
            <button
              type="button"
              className="secondary"
              disabled={!source || preview.isPending}
              onClick={() => source && runPreview(source)}
            >
              {preview.isPending ? 'Previewing…' : 'Refresh preview'}
            </button>
            <button type="submit" className="primary" disabled={!source || !valid || start.isPending}>
              Start Training
            </button>
          </div>
          {!source ? <p className="muted">Choose a skill to preview it and start training.</p> : null}
          {source && !valid ? (
            <p className="field-error">Fix the highlighted hyper-parameters to start training.</p>
          ) : null}
        </form>
        <div className="preview-column" aria-live="polite">
          {preview.isPending ? <p role="status">Building the preview…</p> : null}
          <ErrorMessage error={preview.error} title="Preview failed" />
          {preview.data ? <PreviewPanel preview={preview.data} /> : null}
          {!source && !preview.data ? (
            <div className="panel placeholder">
              <h2>Preview</h2>
              <p className="muted">
                The parsed skill, the importer's findings, the dataset statistics and sample examples appear here
                once you choose a skill.
              </p>
            </div>
          ) : null}
        </div>
      </div>
    </div>
  )
}
