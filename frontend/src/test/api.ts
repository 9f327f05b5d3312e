// A fetch double for component tests: each test names the API answers it expects; any other request
// fails the test (as MSW's onUnhandledRequest: 'error' would).

import { vi } from 'vitest'
import openapi from '../../openapi.json'
import type { ServerConfig } from '../api/types'

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

// GET /api/config of a server with every default: the example in the generated OpenAPI schema (npm run
// gen:types), with the distill recipe chosen as the tests' server default.
const EXAMPLE = openapi.components.schemas.ServerConfig.examples[0] as unknown as ServerConfig
export const CONFIG: ServerConfig = {
  ...EXAMPLE,
  defaults: { ...EXAMPLE.defaults, recipe: 'distill' },
  parameters: EXAMPLE.parameters.map((p) => (p.name === 'recipe' ? { ...p, default: 'distill' } : p)),
}

export function apiError(status: number, code: string, message: string) {
  return { status, body: { error: { code, message } } }
}
