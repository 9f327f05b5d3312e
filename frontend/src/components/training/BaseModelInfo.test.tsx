import { render, screen } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import type { BaseModel } from '../../api/types'
import { BaseModelInfo } from './BaseModelInfo'

const SMOLLM2: BaseModel = {
  name: 'smollm2-135m-instruct',
  kind: 'builtin',
  path: '/srv/.skill-adapter/models/smollm2-135m-instruct',
  builtin: 'smollm2-135m-instruct',
  ready: false,
  converts_on_first_use: true,
  parameters: 134_515_008,
  size_bytes: 542_000_000,
  title: 'SmolLM2-135M-Instruct',
  problem: null,
  summary: '',
}

describe('BaseModelInfo', () => {
  it('says the default model is converted on the first job, with its size', () => {
    render(<BaseModelInfo model={SMOLLM2} fallback="unused" />)
    const line = screen.getByLabelText('Base model')
    expect(line).toHaveTextContent('smollm2-135m-instruct (134.5M parameters, 542 MB)')
    expect(line).toHaveTextContent('converted on the first job')
    expect(screen.getByText('smollm2-135m-instruct')).toHaveAttribute('title', SMOLLM2.path)
  })

  it('says ready once converted, and why not when a folder is missing', () => {
    const { rerender } = render(<BaseModelInfo model={{ ...SMOLLM2, ready: true, converts_on_first_use: false }} fallback="" />)
    expect(screen.getByLabelText('Base model')).toHaveTextContent(/· ready$/)
    rerender(
      <BaseModelInfo
        model={{ ...SMOLLM2, name: '/models/x', kind: 'folder', builtin: null, ready: false, converts_on_first_use: false, parameters: null, size_bytes: null, problem: 'no folder at /models/x' }}
        fallback=""
      />,
    )
    expect(screen.getByLabelText('Base model')).toHaveTextContent('Base model: /models/x · not ready: no folder at /models/x')
  })

  it('marks the toy model, and falls back to the plain name on an older server', () => {
    const { rerender } = render(<BaseModelInfo model={{ ...SMOLLM2, name: 'tiny', builtin: 'tiny', ready: true }} fallback="" />)
    expect(screen.getByLabelText('Base model')).toHaveTextContent('a toy model for tests')
    rerender(<BaseModelInfo fallback="/models/tiny-qwen3" />)
    expect(screen.getByText('/models/tiny-qwen3')).toBeInTheDocument()
  })
})
