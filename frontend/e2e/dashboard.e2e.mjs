// End to end: the real service (tiny embedded model) serving the built dashboard, driven in Chromium.
//
//   npm run build && node e2e/dashboard.e2e.mjs
//
// Environment: CHROMIUM (default /usr/bin/chromium), SKILL_ADAPTER_PYTHON (a Python with skill_adapter
// installed; default: `uv run`), SCREENSHOT_DIR (default: a temporary folder; pass ../docs/screenshots
// to refresh the documentation's pictures), E2E_KEEP=1 keeps the service's temporary folder.
// Prints "N passed, N failed" at the end and exits non-zero when a step failed.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import {
  chromiumPath,
  dist,
  expect,
  freePort,
  serviceEnv,
  skillFile,
  startService,
  stepRunner,
  stopService,
} from './service.mjs'

const axeScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'axe-core', 'axe.min.js')
const work = mkdtempSync(join(tmpdir(), 'dashboard-e2e-'))
const shots = resolve(process.env.SCREENSHOT_DIR ?? join(work, 'screenshots'))
mkdirSync(shots, { recursive: true })

const TRAIN_TIMEOUT = 300_000
const EVAL_TIMEOUT = 300_000

const { step, reportSetupError, finish } = stepRunner()
let page
/** A full-page picture, with the mouse out of the way so that no chart shows a tooltip. */
async function screenshot(name) {
  await page.mouse.move(0, 0)
  await page.waitForTimeout(200)
  await page.screenshot({ path: join(shots, name), fullPage: true })
}

/** axe-core's serious and critical accessibility violations on the current page (WCAG 2 A and AA). */
async function accessibilityProblems() {
  await page.addScriptTag({ path: axeScript })
  const found = await page.evaluate(async () => {
    const result = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] })
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`)
  })
  return found
}

async function expectAccessible(view) {
  const problems = await accessibilityProblems()
  expect(problems.length === 0, `${view} has accessibility problems:\n${problems.join('\n')}`)
}

let service
let browser
let failed = false
try {
  expect(existsSync(join(dist, 'index.html')), `${dist} has no index.html: run npm run build first`)
  const env = serviceEnv(work, { SKILL_ADAPTER_SAVE_STEPS: '5', SKILL_ADAPTER_SWEEP_INTERVAL_SECONDS: '2' })
  service = await startService({ work, env, port: await freePort() })
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] })
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
  const consoleErrors = []
  page.on('pageerror', (err) => consoleErrors.push(String(err)))
  let jobId = ''

  await step('the service serves the dashboard at /', async () => {
    await page.goto(`${service.base}/`)
    await page.getByRole('heading', { name: 'Train an adapter' }).waitFor()
    await page.getByRole('button', { name: 'Start Training' }).waitFor()
    expect(await page.getByRole('button', { name: 'Start Training' }).isDisabled(), 'Start Training is enabled without a skill')
  })

  await step('an API error is shown with the API\'s own message', async () => {
    await page.getByLabel('Choose a SKILL.md file').setInputFiles({
      name: 'notes.pdf',
      mimeType: 'application/pdf',
      buffer: Buffer.from('%PDF-1.4 not a skill'),
    })
    const alert = page.getByRole('alert').filter({ hasText: 'Preview failed' })
    await alert.waitFor()
    const text = await alert.innerText()
    expect(text.includes("Cannot tell what 'notes.pdf' is"), `unexpected error text: ${text}`)
    expect(text.includes('invalid_parameter'), `the error code is missing: ${text}`)
  })

  await step('upload a SKILL.md and preview it', async () => {
    await page.getByLabel('Choose a SKILL.md file').setInputFiles(skillFile)
    await page.getByRole('heading', { name: 'Preview: commit-messages' }).waitFor()
    await page.getByRole('heading', { name: 'Findings' }).waitFor()
    await page.getByText('training examples').waitFor()
    expect((await page.locator('.examples > li').count()) > 0, 'the preview shows no sample example')
  })

  await step('the form starts from the server defaults and validates', async () => {
    const config = await (await fetch(`${service.base}/api/config`)).json()
    const epochs = page.getByLabel('Epochs', { exact: true })
    expect((await epochs.inputValue()) === String(config.defaults.num_epochs), 'Epochs does not show the default')
    await epochs.fill('0')
    await page.getByText('Epochs must be a whole number at least 1 and at most 1000').waitFor()
    expect(await page.getByRole('button', { name: 'Start Training' }).isDisabled(), 'Start Training accepts 0 epochs')
    await epochs.fill('2')
    await page.getByLabel('Batch size').fill('8')
    await page.getByLabel('Gradient accumulation steps').fill('1')
    await page.getByLabel('Learning rate').fill('0.002')
    expect(await page.getByRole('button', { name: 'Start Training' }).isEnabled(), 'Start Training stays disabled')
    await screenshot('training-tab.png')
    await expectAccessible('the Training tab')
  })

  await step('Start Training opens the job page', async () => {
    await page.getByRole('button', { name: 'Start Training' }).click()
    await page.waitForURL(/\/jobs\/train-[0-9a-f]+$/)
    jobId = page.url().split('/').at(-1)
  })

  await step('the job reaches succeeded with a loss curve', async () => {
    await page.locator('.heading-row .badge-succeeded').waitFor({ timeout: TRAIN_TIMEOUT })
    const curve = page.locator('figure.chart', { hasText: 'Loss' }).locator('path.recharts-line-curve').first()
    await curve.waitFor()
    const d = (await curve.getAttribute('d')) ?? ''
    expect((d.match(/[LC]/g) ?? []).length >= 2, `the loss curve has too few points: ${d}`)
    const yTicks = page.locator('figure.chart', { hasText: 'Loss' }).locator('.recharts-yAxis-tick-labels .recharts-cartesian-axis-tick-value')
    await yTicks.first().waitFor()
    const yLabels = (await yTicks.allTextContents()).map((text) => text.trim())
    expect(yLabels.length >= 2 && new Set(yLabels).size === yLabels.length, `the loss axis repeats labels: ${yLabels}`)
    await page.getByText('No GPU').waitFor()
    await page.getByRole('region', { name: 'Checkpoints' }).getByRole('row', { name: /final/ }).waitFor()
    expect((await page.getByTestId('log-tail').locator('.log-line').count()) > 0, 'the log tail is empty')
    const progress = await page.getByRole('progressbar', { name: 'Training progress' }).getAttribute('aria-valuenow')
    expect(progress === '100', `progress is ${progress}`)
    expect(await page.getByRole('button', { name: 'Cancel' }).isDisabled(), 'Cancel is enabled on a finished job')
  })

  await step('polling stops once the job is terminal', async () => {
    let calls = 0
    const count = (request) => {
      if (request.url().includes(`/api/training/${jobId}/`) && !request.url().includes('evaluation')) calls++
    }
    page.on('request', count)
    await page.waitForTimeout(4000)
    page.off('request', count)
    expect(calls === 0, `${calls} requests for a finished job in 4 s`)
    await screenshot('job-page.png')
  })

  await step('reloading the job page loses nothing', async () => {
    await page.reload()
    await page.locator('.heading-row .badge-succeeded').waitFor()
    await page.locator('figure.chart', { hasText: 'Loss' }).locator('path.recharts-line-curve').first().waitFor()
  })

  await step('Try it answers one prompt side by side: base, base + SKILL.md, adapter', async () => {
    const panel = page.locator('section', { has: page.getByRole('heading', { name: 'Try it' }) })
    await panel.getByLabel('Prompt').fill('Write a commit message for: fix the login redirect loop')
    const ask = panel.getByRole('button', { name: 'Ask all three' })
    await ask.waitFor()
    // The button waits for /v1/models (the model server's list) to name the base model.
    const enabledBy = Date.now() + 60_000
    while (await ask.isDisabled()) {
      expect(Date.now() < enabledBy, 'Ask all three stayed disabled: /v1/models named no base model')
      await page.waitForTimeout(250)
    }
    await ask.click()
    const tokens = {}
    for (const arm of ['Base model', 'Base + SKILL.md', 'Adapter']) {
      const article = panel.getByRole('article', { name: arm })
      const failed = article.getByRole('alert')
      const usage = article.getByText(/\d+ prompt tokens ·/)
      await Promise.race([
        usage.waitFor({ timeout: 180_000 }),
        failed.waitFor({ timeout: 180_000 }).then(async () => {
          throw new Error(`${arm} failed: ${await failed.innerText()}`)
        }),
      ])
      tokens[arm] = Number((await usage.innerText()).split(' ')[0])
    }
    expect(tokens['Base + SKILL.md'] > tokens['Adapter'] + 100, `the skill arm should pay for the skill: ${JSON.stringify(tokens)}`)
    expect(tokens['Base model'] === tokens['Adapter'], `base and adapter read the same prompt: ${JSON.stringify(tokens)}`)
    await screenshot('job-page-try-it.png')
  })

  await step('Evaluate runs an evaluation and shows the three arms', async () => {
    await page.getByText('Evaluation options').click()
    await page.getByLabel('Examples').fill('4')
    await page.getByRole('button', { name: 'Evaluate' }).click()
    const panel = page.locator('section', { has: page.getByRole('heading', { name: 'Evaluation' }) })
    const started = page.getByRole('alert').filter({ hasText: 'Evaluation was not started' })
    await Promise.race([
      panel.locator('.badge').first().waitFor(),
      started.waitFor().then(async () => {
        throw new Error(`POST /evaluate failed: ${await started.innerText()}`)
      }),
    ])
    await panel.getByRole('table', { name: 'Metrics per arm' }).waitFor({ timeout: EVAL_TIMEOUT })
    for (const arm of ['Base model', 'Base + SKILL.md in context', 'Adapter (no skill in context)']) {
      await panel.getByRole('columnheader', { name: arm }).waitFor()
    }
    await panel.getByText('4 examples from the held-out split').waitFor()
    await panel.getByRole('heading', { name: 'Best examples' }).waitFor()
    await panel.getByRole('heading', { name: 'Worst examples' }).waitFor()
    await screenshot('job-page-evaluation.png')
    await expectAccessible('the job page')
  })

  let secondId = ''
  await step('a second job, from a skill on the server, starts running', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Training' }).click()
    await page.getByRole('radio', { name: 'Skill on the server' }).check()
    await page.getByLabel('Skill under the skills root').selectOption('commit-messages/SKILL.md')
    await page.getByRole('heading', { name: 'Preview: commit-messages' }).waitFor()
    await page.getByLabel('Epochs', { exact: true }).fill('200')
    await page.getByRole('button', { name: 'Start Training' }).click()
    await page.waitForURL(/\/jobs\/train-[0-9a-f]+$/)
    secondId = page.url().split('/').at(-1)
    expect(secondId !== jobId, "the second job has the first one's id")
    await page.locator('.heading-row .badge-running').waitFor({ timeout: TRAIN_TIMEOUT })
  })

  await step('the jobs list is newest first and refreshes itself while a job is active', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click()
    await page.getByRole('heading', { name: 'Jobs' }).waitFor()
    const rows = page.getByRole('row')
    await rows.nth(2).waitFor()
    const newest = rows.nth(1)
    expect((await newest.innerText()).includes(secondId), 'the newest job is not first')
    expect((await rows.nth(2).innerText()).includes(jobId), 'the first job is not second')
    const older = await rows.nth(2).innerText()
    expect(older.includes('succeeded') && older.includes('commit-messages'), `unexpected row: ${older}`)
    const lossCell = newest.getByRole('cell').last()
    const before = await lossCell.innerText()
    const deadline = Date.now() + 180_000
    while ((await lossCell.innerText()) === before) {
      expect(Date.now() < deadline, "the running job's row did not change in 180 s")
      await page.waitForTimeout(500)
    }
    await screenshot('jobs-list.png')
    await expectAccessible('the jobs list')
  })

  await step('Cancel stops the running job', async () => {
    await page.getByRole('link', { name: secondId }).click()
    await page.waitForURL(new RegExp(`/jobs/${secondId}$`))
    await page.getByRole('button', { name: 'Cancel' }).click()
    await page.locator('.heading-row .badge-cancelled').waitFor({ timeout: 120_000 })
    expect(await page.getByRole('button', { name: 'Evaluate' }).isDisabled(), 'Evaluate is enabled on a cancelled job')
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click()
    await page.getByRole('row', { name: new RegExp(`${secondId}.*cancelled`) }).waitFor()
    await page.getByText('Up to date').waitFor()
  })

  expect(consoleErrors.length === 0, `errors in the page: ${consoleErrors.join('\n')}`)
} catch (err) {
  failed = true
  reportSetupError(err)
  if (service) console.log(`--- service log (last 4000 chars) ---\n${service.log.join('').slice(-4000)}`)
} finally {
  if (browser) await browser.close()
  await stopService(service?.proc)
  if (process.env.E2E_KEEP !== '1') rmSync(work, { recursive: true, force: true })
}
console.log(`screenshots: ${shots}`)
finish(failed)
