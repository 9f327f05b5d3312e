import { fireEvent, screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { apiError, CONFIG, mockApi } from '../../test/api'
import { renderAt } from '../../test/render'
import { TrainingTab } from './TrainingTab'

const PREVIEW = {
  skill: {
    name: 'commit-messages',
    description: 'Writes clear git commit messages.',
    license: 'Apache-2.0',
    metadata: {},
    allowed_tools: [],
    sections: [{ title: 'Steps', level: 2, line: 5 }],
    examples: [],
    references: [],
    source: 'SKILL.md',
  },
  findings: [{ code: 'name_mismatch', message: "name differs from folder 'x'", line: 2, severity: 'warning' }],
  dataset_stats: {
    train_examples: 38,
    held_out_examples: 9,
    by_generator: { train: { trigger: 24, procedure: 14 }, held_out: { trigger: 9 } },
    held_out_sections: [],
    dropped: {},
    tokens: { exact: true, tokenizer: 'tokenizer.json', all: { min: 10, max: 279, mean: 155, p50: 150, p95: 250, total: 7000 } },
    max_seq_length: 2048,
    over_max_seq_length: 0,
    seed: 42,
  },
  examples: [
    { prompt: [{ role: 'user', content: 'Write a commit message' }], completion: [{ role: 'assistant', content: 'feat: add x' }], generator: 'trigger', section: 'description', kind: 'apply', split: 'train' },
    { prompt: [{ role: 'user', content: 'What is step 1?' }], completion: [{ role: 'assistant', content: 'Read the diff' }], generator: 'procedure', section: 'Steps', kind: 'apply', split: 'train' },
  ],
  model: '/models/tiny-qwen3',
  recipe: 'distill',
  distill: {
    prompts: [{ prompt: 'Write the commit message for my parser fix', source: 'trigger', kind: 'task', split: 'train' }],
    model_written_prompts: 32,
    dropped: {},
    skill_tokens: 1134,
    teacher_context_tokens: 2048,
    skill_truncated_for_teacher: false,
    note: 'the teacher answers these prompts when the job runs',
  },
}

const SKILLS = { root: 'skills', data: [{ path: 'commit-messages/SKILL.md', name: 'commit-messages' }], count: 1 }

afterEach(() => vi.unstubAllGlobals())

describe('the Training tab', () => {
  it('uploads a SKILL.md, previews it, and starts a job with the form\'s values', async () => {
    const api = mockApi({
      'GET /api/config': { body: CONFIG },
      'GET /api/skills': { body: SKILLS },
      'POST /api/skills/preview': { body: PREVIEW },
      'POST /api/training/start': { status: 202, body: { job_id: 'train-abc123', status: 'queued', created_at: '2026-11-26T08:00:00Z' } },
    })
    const user = userEvent.setup()
    renderAt('/', '/', <TrainingTab />)

    const start = await screen.findByRole('button', { name: 'Start Training' })
    expect(start).toBeDisabled()
    expect(screen.getByLabelText('Epochs')).toHaveValue(3)
    expect(screen.getByLabelText('Learning rate')).toHaveValue(0.0002)
    expect(screen.getByLabelText('Quantisation bits')).toBeDisabled()

    await user.upload(screen.getByLabelText('Choose a SKILL.md file'), new File(['---\nname: x\n---\n'], 'SKILL.md'))
    expect(await screen.findByRole('heading', { name: 'Preview: commit-messages' })).toBeInTheDocument()
    expect(screen.getByText("name differs from folder 'x'")).toBeInTheDocument()
    expect(screen.getByText('38')).toBeInTheDocument()
    expect(screen.getByText('Read the diff')).toBeInTheDocument()
    const previewForm = api.calls.find((c) => c.path === '/api/skills/preview')!.body as FormData
    expect(previewForm.get('seed')).toBe('42')

    await user.clear(screen.getByLabelText('Epochs'))
    await user.type(screen.getByLabelText('Epochs'), '0')
    expect(screen.getByText('Epochs must be a whole number at least 1 and at most 1000')).toBeInTheDocument()
    expect(screen.getByLabelText('Epochs')).toHaveAttribute('aria-invalid', 'true')
    expect(start).toBeDisabled()
    await user.clear(screen.getByLabelText('Epochs'))
    await user.type(screen.getByLabelText('Epochs'), '2')
    expect(start).toBeEnabled()

    await user.click(start)
    await waitFor(() => expect(screen.getByTestId('location')).toHaveTextContent('/jobs/train-abc123'))
    const form = api.calls.find((c) => c.path === '/api/training/start')!.body as FormData
    expect(form.get('num_epochs')).toBe('2')
    expect(form.get('learning_rate')).toBe('0.0002')
    expect(form.get('quant_bits')).toBeNull()
    expect(api.unhandled).toEqual([])
  })

  it('picks a skill on the server and shows the API\'s own error message', async () => {
    const api = mockApi({
      'GET /api/config': { body: CONFIG },
      'GET /api/skills': { body: SKILLS },
      'POST /api/skills/preview': { body: PREVIEW },
      'POST /api/training/start': apiError(422, 'skill_invalid', 'The SKILL.md has no description (line 3)'),
    })
    const user = userEvent.setup()
    renderAt('/', '/', <TrainingTab />)
    await user.click(await screen.findByRole('radio', { name: 'Skill on the server' }))
    const select = await screen.findByLabelText('Skill under the skills root')
    await screen.findByRole('option', { name: /commit-messages\/SKILL.md/ })
    await user.selectOptions(select, 'commit-messages/SKILL.md')
    await screen.findByRole('heading', { name: 'Preview: commit-messages' })
    expect(screen.getByRole('heading', { name: /Distill prompts/ })).toBeInTheDocument()
    expect(screen.getByText('Write the commit message for my parser fix')).toBeInTheDocument()
    const preview = api.calls.find((c) => c.path === '/api/skills/preview')!
    expect(JSON.parse(String(preview.body))).toMatchObject({ skill_path: 'commit-messages/SKILL.md', seed: 42 })

    await user.click(screen.getByRole('button', { name: 'Start Training' }))
    const alert = await screen.findByRole('alert')
    expect(alert).toHaveTextContent('The SKILL.md has no description (line 3)')
    expect(alert).toHaveTextContent('skill_invalid')
    const body = JSON.parse(String(api.calls.find((c) => c.path === '/api/training/start')!.body))
    expect(body).toMatchObject({ skill_path: 'commit-messages/SKILL.md', num_epochs: 3, adapter_type: 'lora' })
    expect(body).toMatchObject({ recipe: 'distill', distill_loss: 'kl' })
  })

  it('takes a SKILL.md dropped on the drop zone', async () => {
    const api = mockApi({
      'GET /api/config': { body: CONFIG },
      'GET /api/skills': { body: SKILLS },
      'POST /api/skills/preview': { body: PREVIEW },
    })
    renderAt('/', '/', <TrainingTab />)
    const zone = await screen.findByTestId('dropzone')
    const file = new File(['---\nname: dropped\n---\n'], 'dropped-SKILL.md')
    fireEvent.dragOver(zone, { dataTransfer: { files: [file] } })
    expect(zone).toHaveClass('dragging')
    fireEvent.drop(zone, { dataTransfer: { files: [file] } })
    expect(await screen.findByText('dropped-SKILL.md')).toBeInTheDocument()
    await screen.findByRole('heading', { name: 'Preview: commit-messages' })
    const form = api.calls.find((c) => c.path === '/api/skills/preview')!.body as FormData
    expect((form.get('file') as File).name).toBe('dropped-SKILL.md')
    expect(screen.getByRole('button', { name: 'Start Training' })).toBeEnabled()
  })

  it('shows why the configuration could not be loaded', async () => {
    mockApi({ 'GET /api/config': apiError(503, 'database_unavailable', 'The database is unavailable; retry shortly.') })
    renderAt('/', '/', <TrainingTab />)
    expect(await screen.findByRole('alert')).toHaveTextContent('The database is unavailable; retry shortly.')
  })
})
