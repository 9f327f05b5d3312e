import type { BaseModel } from '../../api/types'

function size(bytes: number | null): string | null {
  if (!bytes) return null
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`
}

function parameters(count: number | null): string | null {
  if (!count) return null
  return count >= 1e9 ? `${(count / 1e9).toFixed(1)}B parameters` : `${(count / 1e6).toFixed(1)}M parameters`
}

/** Which model jobs train, how big it is, and whether it is ready or converted on the first job. */
export function BaseModelInfo({ model, fallback }: { model?: BaseModel; fallback: string }) {
  if (!model) {
    return (
      <p className="muted">
        Base model: <code>{fallback}</code>
      </p>
    )
  }
  const facts = [parameters(model.parameters ?? null), size(model.size_bytes ?? null)].filter(Boolean).join(', ')
  let state: string
  if (model.ready) state = 'ready'
  else if (model.converts_on_first_use) state = 'converted on the first job (once, about half a minute)'
  else state = model.problem ? `not ready: ${model.problem}` : 'not ready'
  return (
    <p className="muted" aria-label="Base model">
      Base model: <code title={model.path ?? undefined}>{model.name}</code>
      {facts ? ` (${facts})` : ''} · <span>{state}</span>
      {model.builtin === 'tiny' ? ' · a toy model for tests: its adapters prove the plumbing, not the skill' : ''}
    </p>
  )
}
