import { screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { renderAt } from '../../test/render'
import { TryItPanel } from './TryItPanel'

const MODELS = {
  object: 'list',
  data: [
    { id: 'smollm2-135m-instruct', parent: null, loaded: true },
    { id: 'train-abc', parent: 'smollm2-135m-instruct', skill: 'commit-messages', loaded: false },
  ],
}

function sse(pieces: string[], promptTokens: number): Response {
  const events = [
    ...pieces.map((p) => ({ choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })),
    { choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: pieces.length, total_tokens: 0 } },
  ]
  const text = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n'
  const bytes = new TextEncoder().encode(text)
  const body = new ReadableStream({
    start(controller) {
      // Split mid-event: the reader must join chunks before parsing.
      controller.enqueue(bytes.slice(0, 17))
      controller.enqueue(bytes.slice(17))
      controller.close()
    },
  })
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
}

function stubFetch(chat: (body: Record<string, unknown>) => Response) {
  const bodies: Record<string, unknown>[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const path = String(input)
      if (path === '/v1/models') return new Response(JSON.stringify(MODELS), { status: 200 })
      if (path === '/v1/chat/completions') {
        const body = JSON.parse(String(init?.body)) as Record<string, unknown>
        bodies.push(body)
        return chat(body)
      }
      throw new Error(`unhandled request ${path}`)
    }),
  )
  return bodies
}

afterEach(() => vi.unstubAllGlobals())

describe('TryItPanel', () => {
  it('streams one prompt to base, base + SKILL.md and the adapter, with prompt tokens under each', async () => {
    const bodies = stubFetch((body) => {
      if (body.with_skill) return sse(['Skilled ', 'answer'], 912)
      if (body.model === 'train-abc') return sse(['feat: ', 'adapter answer'], 21)
      return sse(['Base answer'], 21)
    })
    renderAt('/jobs/train-abc', '/jobs/:jobId', <TryItPanel jobId="train-abc" />)
    const ask = await screen.findByRole('button', { name: 'Ask all three' })
    await waitFor(() => expect(ask).toBeDisabled()) // no prompt yet
    await userEvent.type(screen.getByLabelText('Prompt'), 'Write a commit message')
    await waitFor(() => expect(ask).toBeEnabled())
    await userEvent.click(ask)

    const base = screen.getByRole('article', { name: 'Base model' })
    const skill = screen.getByRole('article', { name: 'Base + SKILL.md' })
    const adapter = screen.getByRole('article', { name: 'Adapter' })
    expect(await within(adapter).findByText('feat: adapter answer')).toBeInTheDocument()
    expect(await within(skill).findByText('Skilled answer')).toBeInTheDocument()
    expect(await within(base).findByText('Base answer')).toBeInTheDocument()
    expect(within(skill).getByText(/912 prompt tokens/)).toBeInTheDocument()
    expect(within(adapter).getByText(/21 prompt tokens/)).toBeInTheDocument()
    expect(screen.queryByText(/blank: the model wrote/)).not.toBeInTheDocument()

    expect(bodies).toHaveLength(3)
    for (const body of bodies) {
      expect(body).toMatchObject({ stream: true, temperature: 0, messages: [{ role: 'user', content: 'Write a commit message' }] })
    }
    expect(bodies.map((b) => [b.model, b.with_skill ?? null])).toEqual([
      ['smollm2-135m-instruct', null],
      ['smollm2-135m-instruct', 'train-abc'],
      ['train-abc', null],
    ])
  })

  it('shows an arm that fails with the service’s message, and a blank answer as blank, while the others answer', async () => {
    stubFetch((body) =>
      body.model === 'train-abc'
        ? new Response(
            JSON.stringify({ error: { code: 'adapter_base_mismatch', message: 'trained on another base' } }),
            { status: 409 },
          )
        : sse(body.with_skill ? ['\n\n'] : ['fine'], 5),
    )
    renderAt('/jobs/train-abc', '/jobs/:jobId', <TryItPanel jobId="train-abc" />)
    await userEvent.type(screen.getByLabelText('Prompt'), 'hi')
    await userEvent.click(await screen.findByRole('button', { name: 'Ask all three' }))
    const adapter = screen.getByRole('article', { name: 'Adapter' })
    expect(await within(adapter).findByRole('alert')).toHaveTextContent('trained on another base')
    expect(await within(screen.getByRole('article', { name: 'Base model' })).findByText('fine')).toBeInTheDocument()
    const skill = screen.getByRole('article', { name: 'Base + SKILL.md' })
    expect(await within(skill).findByText(/blank: the model wrote only white space/)).toBeInTheDocument()
  })
})
