// A fetch double for component tests: each test names the API answers it expects; any other request
// fails the test (as MSW's onUnhandledRequest: 'error' would).

import { vi } from 'vitest'

export interface Call {
  method: string
  path: string
  body: BodyInit | null | undefined
  headers: Record<string, string>
}

type Reply = { status?: number; body: unknown; headers?: Record<string, string> }
type Answer = Reply | ((call: Call) => Reply)

export function mockApi(routes: Record<string, Answer>) {
  const calls: Call[] = []
  const unhandled: string[] = []
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://dashboard.test')
    const method = (init?.method ?? 'GET').toUpperCase()
    const headers = (init?.headers ?? {}) as Record<string, string>
    const call = { method, path: url.pathname + url.search, body: init?.body, headers }
    calls.push(call)
    const key = Object.keys(routes).find((route) => {
      const [m, p] = route.split(' ')
      return m === method && (p === call.path || p === url.pathname)
    })
    if (!key) {
      unhandled.push(`${method} ${call.path}`)
      throw new Error(`unhandled request ${method} ${call.path}`)
    }
    const route = routes[key]
    const answer = typeof route === 'function' ? route(call) : route
    return new Response(JSON.stringify(answer.body), {
      status: answer.status ?? 200,
      headers: { 'Content-Type': 'application/json', ...(answer.headers ?? {}) },
    })
  })
  vi.stubGlobal('fetch', fetchMock)
  return {
    calls,
    unhandled,
    count: (method: string, path: string) => calls.filter((c) => c.method === method && c.path.startsWith(path)).length,
  }
}

export const CONFIG = {
  model: '/models/tiny-qwen3',
  model_max_length: 4096,
  defaults: {
    adapter_type: 'lora',
    num_epochs: 3,
    learning_rate: 0.0002,
    batch_size: 4,
    gradient_accumulation_steps: 4,
    max_seq_length: 2048,
    lora_r: 16,
    lora_alpha: 32,
    lora_dropout: 0.05,
    quant_bits: 4,
    save_steps: 100,
    logging_steps: 1,
    seed: 42,
    recipe: 'distill',
    distill_loss: 'kl',
    distill_prompts: 32,
    teacher_max_new_tokens: 128,
    distill_top_k: 64,
    teacher_temperature: 0,
  },
  ranges: { num_epochs: 'an integer from 1 to 1000' },
}

export function apiError(status: number, code: string, message: string) {
  return { status, body: { error: { code, message } } }
}
