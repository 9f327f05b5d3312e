// What the end-to-end scripts share: the repository's paths, the service started the way a user starts it
// (`skill-adapter serve` on a free port, on the embedded tiny model, in a temporary folder), and the step
// runner that prints "ok"/"FAIL" per step and "N passed, N failed" at the end.
//
// Readiness is an event, not a poll: the service is ready when uvicorn prints that it listens on our port
// (the model server `serve` starts prints its own line, for its own port); the wait fails at once when the
// process exits first. SKILL_ADAPTER_PYTHON (a Python with skill_adapter installed) runs the CLI with
// `python -m`; without it, `uv run`.

import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
export const frontend = resolve(here, '..')
export const repo = resolve(frontend, '..')
export const dist = join(frontend, 'dist')
export const skillFile = join(repo, 'skills', 'commit-messages', 'SKILL.md')
export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium'

// `serve` imports torch and transformers before it listens: seconds on idle cores, a minute when crowded.
export const START_PATIENCE = 90_000
export const STOP_PATIENCE = 15_000

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer()
    server.unref()
    server.on('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => ok(port))
    })
  })
}

/** The environment of a service on the tiny model with its data under `work`: no SKILL_ADAPTER_* variable of
 * the caller's shell, the CPU only, offline; `extra` adds or overrides variables. */
export function serviceEnv(work, extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SKILL_ADAPTER_')))
  return Object.assign(env, {
    SKILL_ADAPTER_MODEL: 'tiny', // the embedded toy model: the browser tests check the dashboard, not a model
    SKILL_ADAPTER_DATA_DIR: join(work, 'data'),
    SKILL_ADAPTER_CHECKPOINT_DIR: join(work, 'checkpoints'),
    SKILL_ADAPTER_SKILLS_ROOT: join(repo, 'skills'),
    SKILL_ADAPTER_DASHBOARD_DIR: dist,
    CUDA_VISIBLE_DEVICES: '',
    HF_HUB_OFFLINE: '1',
    TOKENIZERS_PARALLELISM: 'false',
    OMP_NUM_THREADS: '2',
    ...extra,
  })
}

/** [command, arguments] that run `skill-adapter <args>`. */
export function cli(args) {
  const python = process.env.SKILL_ADAPTER_PYTHON
  return python ? [python, ['-m', 'skill_adapter.cli', ...args]] : ['uv', ['run', '--project', repo, 'skill-adapter', ...args]]
}

/** `skill-adapter serve --port <port> <extraArgs>` in `work`; resolves once it listens and answers /api/health.
 * Returns { proc, base, port, log } (log: the output so far, an array of chunks). */
export async function startService({ work, env, port, extraArgs = [] }) {
  const [cmd, args] = cli(['serve', '--port', String(port), ...extraArgs])
  const log = []
  const proc = spawn(cmd, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const base = `http://127.0.0.1:${port}`
  const ready = `Uvicorn running on ${base}`
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      fail(new Error(`the service printed no "${ready}" in ${START_PATIENCE / 1000} s:\n${log.join('')}`))
    }, START_PATIENCE)
    const done = (error) => {
      clearTimeout(timer)
      proc.off('exit', exited)
      if (error) fail(error)
      else ok()
    }
    const exited = (code) => done(new Error(`the service exited with ${code}:\n${log.join('')}`))
    proc.on('exit', exited)
    for (const stream of [proc.stdout, proc.stderr]) {
      stream.on('data', (chunk) => {
        log.push(chunk.toString())
        if (log.join('').includes(ready)) done()
      })
    }
  })
  const health = await fetch(`${base}/api/health`)
  if (!health.ok) throw new Error(`/api/health answered ${health.status}:\n${log.join('')}`)
  return { proc, base, port, log }
}

/** Ctrl-C to the service's process group (the worker and the model server stop with it); SIGKILL after
 * STOP_PATIENCE. */
export function stopService(proc) {
  if (!proc || proc.exitCode !== null) return Promise.resolve()
  return new Promise((ok) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-proc.pid, 'SIGKILL')
      } catch {
        // already gone
      }
      ok()
    }, STOP_PATIENCE)
    proc.on('exit', () => {
      clearTimeout(timer)
      ok()
    })
    try {
      process.kill(-proc.pid, 'SIGINT')
    } catch {
      ok()
    }
  })
}

export function expect(condition, message) {
  if (!condition) throw new Error(message)
}

/** Named steps: each prints "ok" with its time or "FAIL" with the error (and rethrows, ending the run). */
export function stepRunner() {
  const results = []
  async function step(name, fn) {
    const started = Date.now()
    try {
      await fn()
      results.push({ name, ok: true })
      console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    } catch (err) {
      results.push({ name, ok: false })
      console.log(`FAIL ${name}: ${err instanceof Error ? err.stack : err}`)
      throw err
    }
  }
  /** Print the setup's error when no step failed (the run stopped before or between steps). */
  function reportSetupError(err) {
    if (!results.some((r) => !r.ok)) console.log(`FAIL setup: ${err instanceof Error ? err.stack : err}`)
  }
  /** Print "N passed, N failed" and exit with 1 when anything failed. */
  function finish(failed) {
    const passed = results.filter((r) => r.ok).length
    const failures = results.length - passed + (failed && results.every((r) => r.ok) ? 1 : 0)
    console.log(`${passed} passed, ${failures} failed`)
    process.exit(failures ? 1 : 0)
  }
  return { step, reportSetupError, finish }
}
