// The OpenAI-compatible /v1 of the service: the model list and streamed chat completions (server-sent events).

import { ApiError, authHeaders, KEY_NEEDED_EVENT } from './client'
import type { components } from './schema'

export const modelKeys = { all: ['v1', 'models'] as const }

/** One entry of GET /v1/models: the base model (``parent`` null) or a job's adapter. */
export type ServedModel = components['schemas']['ServedModel']
export type ChatUsage = components['schemas']['Usage']

/** The body of POST /v1/chat/completions (``with_skill``: this service's extension, the SKILL.md of a job or
 * skill as the system prompt). */
export type ChatRequest = components['schemas']['ChatCompletionRequest']

async function errorFrom(response: Response): Promise<ApiError> {
  if (response.status === 401) window.dispatchEvent(new Event(KEY_NEEDED_EVENT))
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } }
    if (body.error?.message) return new ApiError(response.status, body.error.code ?? 'error', body.error.message)
  } catch {
    // not JSON: fall through
  }
  return new ApiError(response.status, 'http_error', `HTTP ${response.status}`)
}

export async function listModels(): Promise<ServedModel[]> {
  let response: Response
  try {
    response = await fetch('/v1/models', { headers: authHeaders() })
  } catch (err) {
    throw new ApiError(0, 'network_error', `Cannot reach the service (${String(err)})`)
  }
  if (!response.ok) throw await errorFrom(response)
  return ((await response.json()) as components['schemas']['ModelList']).data
}

/** Stream one chat completion: ``onText`` gets each piece of the answer; resolves with the usage. */
export async function streamChat(
  request: ChatRequest,
  onText: (piece: string) => void,
  signal?: AbortSignal,
): Promise<ChatUsage | null> {
  let response: Response
  try {
    response = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { ...authHeaders(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...request, stream: true, stream_options: { include_usage: true } }),
      signal,
    })
  } catch (err) {
    if (signal?.aborted) return null
    throw new ApiError(0, 'network_error', `Cannot reach the service (${String(err)})`)
  }
  if (!response.ok || !response.body) throw await errorFrom(response)
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  let usage: ChatUsage | null = null
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue
        const data = line.slice(6)
        if (data === '[DONE]') return usage
        const chunk = JSON.parse(data) as {
          choices?: { delta?: { content?: string } }[]
          usage?: ChatUsage
          error?: { code?: string; message?: string }
        }
        if (chunk.error) throw new ApiError(500, chunk.error.code ?? 'error', chunk.error.message ?? 'failed')
        const piece = chunk.choices?.[0]?.delta?.content
        if (piece) onText(piece)
        if (chunk.usage) usage = chunk.usage
      }
    }
  }
  return usage
}
