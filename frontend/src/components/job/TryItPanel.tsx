import { useQuery } from '@tanstack/react-query'
import { useEffect, useRef, useState } from 'react'
import { listModels, modelKeys, streamChat, type ChatRequest, type ChatUsage } from '../../api/chat'
import { ErrorMessage } from '../common/ErrorMessage'

type ArmId = 'base' | 'skill' | 'adapter'

interface ArmState {
  text: string
  usage: ChatUsage | null
  busy: boolean
  error: unknown
}

const EMPTY: ArmState = { text: '', usage: null, busy: false, error: null }

const ARMS: { id: ArmId; title: string; note: string }[] = [
  { id: 'base', title: 'Base model', note: 'no skill' },
  { id: 'skill', title: 'Base + SKILL.md', note: 'the skill in the prompt' },
  { id: 'adapter', title: 'Adapter', note: 'the skill in the weights' },
]

/** One prompt answered side by side by the base model, the base model reading the SKILL.md, and the adapter,
 * streamed from the service's OpenAI-compatible /v1, with each arm's prompt tokens under its answer. */
export function TryItPanel({ jobId }: { jobId: string }) {
  const models = useQuery({ queryKey: modelKeys.all, queryFn: listModels, staleTime: 30_000 })
  const base = models.data?.find((m) => m.parent === null)?.id
  const [prompt, setPrompt] = useState('')
  const [arms, setArms] = useState<Record<ArmId, ArmState>>({ base: EMPTY, skill: EMPTY, adapter: EMPTY })
  const controller = useRef<AbortController | null>(null)
  useEffect(() => () => controller.current?.abort(), [])

  const busy = Object.values(arms).some((arm) => arm.busy)
  const update = (id: ArmId, change: (arm: ArmState) => ArmState) =>
    setArms((current) => ({ ...current, [id]: change(current[id]) }))

  function ask() {
    if (!base || !prompt.trim()) return
    controller.current?.abort()
    const abort = new AbortController()
    controller.current = abort
    const messages: ChatRequest['messages'] = [{ role: 'user', content: prompt }]
    const requests: Record<ArmId, ChatRequest> = {
      base: { model: base, messages },
      skill: { model: base, messages, with_skill: jobId },
      adapter: { model: jobId, messages },
    }
    for (const { id } of ARMS) {
      update(id, () => ({ ...EMPTY, busy: true }))
      streamChat(
        { ...requests[id], temperature: 0, max_tokens: 256 },
        (piece) => update(id, (arm) => ({ ...arm, text: arm.text + piece })),
        abort.signal,
      )
        .then((usage) => update(id, (arm) => ({ ...arm, usage, busy: false })))
        .catch((error: unknown) => update(id, (arm) => ({ ...arm, error, busy: false })))
    }
  }

  return (
    <section className="panel try-it" aria-labelledby="try-it-title">
      <h2 id="try-it-title">Try it</h2>
      <ErrorMessage error={models.error} title="The model server is not answering" />
      <form
        className="try-it-form"
        onSubmit={(event) => {
          event.preventDefault()
          ask()
        }}
      >
        <label htmlFor="try-it-prompt">Prompt</label>
        <textarea
          id="try-it-prompt"
          rows={3}
          value={prompt}
          onChange={(event) => setPrompt(event.target.value)}
          placeholder="Ask what the skill is for"
        />
        <button type="submit" className="primary" disabled={!base || !prompt.trim() || busy}>
          {busy ? 'Answering…' : 'Ask all three'}
        </button>
      </form>
      <div className="try-it-arms">
        {ARMS.map(({ id, title, note }) => {
          const arm = arms[id]
          return (
            <article key={id} className="try-it-arm" aria-label={title} aria-busy={arm.busy}>
              <h3>
                {title} <span className="muted">({note})</span>
              </h3>
              <p className="try-it-answer" aria-live="polite">
                {arm.text.trim() ? arm.text : arm.busy ? '…' : ''}
              </p>
              {!arm.busy && arm.usage && !arm.text.trim() ? (
                <p className="muted">(blank: the model wrote only white space or nothing)</p>
              ) : null}
              <ErrorMessage error={arm.error} title={`${title} did not answer`} />
              <p className="muted try-it-usage">
                {arm.usage
                  ? `${arm.usage.prompt_tokens} prompt tokens · ${arm.usage.completion_tokens} answer tokens`
                  : 'prompt tokens: —'}
              </p>
            </article>
          )
        })}
      </div>
    </section>
  )
}
