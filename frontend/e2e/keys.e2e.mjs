// End to end, short: the dashboard on a server that has API keys (issue 15), driven in Chromium.
//
//   npm run build && node e2e/keys.e2e.mjs
//
// The service runs without a worker (nothing trains): the run checks that the dashboard asks for a key,
// refuses a wrong one, sends the right one on every call, shows a 429 as a message a person can act on,
// and that a page on another origin changes nothing. Environment as dashboard.e2e.mjs (CHROMIUM,
// SKILL_ADAPTER_PYTHON). Prints "N passed, N failed" at the end.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import {
  chromiumPath,
  cli,
  dist,
  expect,
  freePort,
  serviceEnv,
  skillFile,
  startService,
  stepRunner,
  stopService,
} from './service.mjs'

const work = mkdtempSync(join(tmpdir(), 'keys-e2e-'))
const env = serviceEnv(work, {
  SKILL_ADAPTER_SUBMISSIONS_PER_MINUTE: '1', // the second submission meets the 429
  SKILL_ADAPTER_KEYS_CACHE_SECONDS: '0',
})

function createKey(name) {
  const [cmd, args] = cli(['keys', 'create', name])
  const result = spawnSync(cmd, args, { cwd: work, env, encoding: 'utf-8', timeout: 120_000 })
  if (result.status !== 0) throw new Error(`keys create failed: ${result.stderr}`)
  return result.stdout.trim().split('\n').at(-1)
}

const { step, reportSetupError, finish } = stepRunner()

let service
let browser
let failed = false
try {
  expect(existsSync(join(dist, 'index.html')), `${dist} has no index.html: run npm run build first`)
  const key = createKey('e2e')
  expect(key.startsWith('sa_'), `keys create did not print a key last: ${key}`)
  service = await startService({ work, env, port: await freePort(), extraArgs: ['--no-worker'] })
  const jobCount = async () => {
    const answer = await fetch(`${service.base}/api/training`, { headers: { Authorization: `Bearer ${key}` } })
    return (await answer.json()).count
  }
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] })
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })

  await step('the dashboard asks for a key after the 401', async () => {
    await page.goto(`${service.base}/`)
    await page.getByLabel('This server needs an API key').waitFor()
    await page.getByRole('alert').filter({ hasText: 'Enter an API key' }).first().waitFor()
  })

  await step('a wrong key is refused with a message', async () => {
    await page.getByLabel('This server needs an API key').fill('sa_not-a-key')
    await page.getByRole('button', { name: 'Use key' }).click()
    await page.getByLabel('This key was refused; API key').waitFor()
  })

  await step('the right key is kept for the tab and the dashboard works', async () => {
    await page.getByLabel('This key was refused; API key').fill(key)
    await page.getByRole('button', { name: 'Use key' }).click()
    await page.getByText('API key set').waitFor()
    await page.getByRole('heading', { name: 'Train an adapter' }).waitFor()
    const stored = await page.evaluate(() => sessionStorage.getItem('skill-adapter.api-key'))
    expect(stored === key, 'the key is not in session storage')
    await page.reload()
    await page.getByText('API key set').waitFor() // asked once per tab, not on every page load
  })

  await step('a training started from the page is accepted with the key', async () => {
    await page.getByLabel('Choose a SKILL.md file').setInputFiles(skillFile)
    await page.getByRole('heading', { name: 'Preview: commit-messages' }).waitFor()
    await page.getByRole('button', { name: 'Start Training' }).click()
    await page.waitForURL(/\/jobs\/train-[0-9a-f]+$/)
    expect((await jobCount()) === 1, 'the job was not created')
  })

  await step('a 429 is shown with when to retry', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Training' }).click()
    await page.getByLabel('Choose a SKILL.md file').setInputFiles(skillFile)
    await page.getByRole('heading', { name: 'Preview: commit-messages' }).waitFor()
    await page.getByRole('button', { name: 'Start Training' }).click()
    const alert = page.getByRole('alert').filter({ hasText: 'rate_limited' })
    await alert.waitFor()
    const text = await alert.innerText()
    expect(/Try again in \d+ s/.test(text), `the 429 message says nothing to do: ${text}`)
    expect((await jobCount()) === 1, 'a refused submission created a job')
  })

  await step('a page on another origin changes nothing', async () => {
    const other = await browser.newPage()
    await other.goto(`http://localhost:${service.port}/`) // another origin (allowed host), no key stored
    const statuses = await other.evaluate(async (target) => {
      const form = new FormData()
      form.append('skill_path', 'commit-messages/SKILL.md')
      const tries = [
        { method: 'POST', mode: 'no-cors', body: form },
        { method: 'POST', mode: 'no-cors', body: '{"skill_path": "commit-messages/SKILL.md"}', headers: { 'Content-Type': 'text/plain' } },
      ]
      const out = []
      for (const init of tries) out.push((await fetch(`${target}/api/training/start`, init)).type)
      return out
    }, service.base)
    expect(statuses.every((type) => type === 'opaque'), `unexpected answers: ${statuses}`)
    expect((await jobCount()) === 1, 'a cross-site post created a job')
    await other.close()
  })
} catch (err) {
  failed = true
  reportSetupError(err)
  if (service) console.log(`--- service log (last 4000 chars) ---\n${service.log.join('').slice(-4000)}`)
} finally {
  if (browser) await browser.close()
  await stopService(service?.proc)
  rmSync(work, { recursive: true, force: true })
}
finish(failed)
