import { render, screen, within } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import type { EvaluationReport } from '../../api/types'
import { EvaluationReportView } from './EvaluationPanel'

const silent = { output: '', perplexity: 1300, chrf: 0 }

// What the tiny model's evaluation gives: every arm silent, and a skill effect of 0.12% on perplexity.
const TINY: EvaluationReport = {
  source: 'held_out',
  num_examples: 1,
  generation: { do_sample: false, max_new_tokens: 128 },
  skill_truncated: false,
  arms: {
    base: { perplexity: 1319.33, accuracy: 0, bleu: 0, chrf: 0, prompt_tokens_per_call: 28.2 },
    base_with_skill: { perplexity: 1320.855, accuracy: 0, bleu: 0, chrf: 0, prompt_tokens_per_call: 1170.2 },
    adapter: { perplexity: 1294.555, accuracy: 0, bleu: 0, chrf: 0, prompt_tokens_per_call: 28.2 },
  },
  internalisation: {
    perplexity: {
      ratio: null,
      reason: 'the SKILL.md in the prompt moves it by only 0.12% (base 1319.33, base + SKILL.md 1320.86): too small an effect to measure the adapter against, the ratio would only magnify noise',
    },
    chrf: { ratio: null, reason: 'every arm produced empty output on every scored case: there is no text to compare' },
    bleu: { ratio: null, reason: 'base_with_skill equals base on this metric: the skill text in the prompt changes nothing' },
  },
  prompt_tokens_saved_per_call: 1142,
  notes: [
    'The base model is the embedded tiny test model: it is random-initialised and writes no real text, so this report shows that the pipeline runs, not what the skill does.',
    'Every arm produced empty output on all 1 cases, so accuracy, BLEU and chrF compare nothing.',
  ],
  examples: [{ id: 'held-out-1', prompt: 'Show me an example', reference: 'feat: x', outputs: { base: silent, base_with_skill: silent, adapter: silent } }],
  best: ['held-out-1'],
  worst: [],
}

describe('the evaluation report', () => {
  it('says first, in words, which figures mean nothing and why', () => {
    render(<EvaluationReportView report={TINY} />)
    const notes = screen.getByRole('note', { name: 'Read this first' })
    expect(notes).toHaveTextContent('embedded tiny test model')
    expect(notes).toHaveTextContent('Every arm produced empty output')
    // It comes before the figures it qualifies.
    const metrics = screen.getByRole('table', { name: 'Metrics per arm' })
    expect(notes.compareDocumentPosition(metrics) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy()

    const ratios = screen.getByRole('table', { name: 'What the adapter internalised' })
    const perplexity = within(ratios).getByRole('row', { name: /^Perplexity \(lower is better\) means nothing/ })
    expect(perplexity).toHaveTextContent('moves it by only 0.12%')
    expect(within(ratios).getByRole('row', { name: /^chrF means nothing/ })).toHaveTextContent('there is no text to compare')
    // Arms are named in words, even in a reason written by an older version.
    expect(within(ratios).getByRole('row', { name: /^BLEU means nothing/ })).toHaveTextContent('base + SKILL.md equals base')
    expect(document.body.textContent).not.toContain('base_with_skill')
    expect(within(ratios).queryByText(/-16/)).not.toBeInTheDocument()
  })

  it('shows no notes box when every figure stands', () => {
    render(<EvaluationReportView report={{ ...TINY, notes: [] }} />)
    expect(screen.queryByRole('note', { name: 'Read this first' })).not.toBeInTheDocument()
    render(<EvaluationReportView report={{ ...TINY, notes: undefined }} />)
    expect(screen.queryByRole('note', { name: 'Read this first' })).not.toBeInTheDocument()
  })
})
