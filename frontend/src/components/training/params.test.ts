import { describe, expect, it } from 'vitest'
import type { ServerConfig } from '../../api/types'
import { CONFIG } from '../../test/api'
import { initialValues, toParams, validate } from './params'

const config = CONFIG as ServerConfig

describe('hyper-parameters', () => {
  it('start from the server defaults and are valid', () => {
    const values = initialValues(config)
    expect(values.num_epochs).toBe('3')
    expect(values.learning_rate).toBe('0.0002')
    expect(values.target_modules).toBe('')
    expect(validate(values, config)).toEqual({})
  })

  it('explain what is wrong, field by field', () => {
    const values = {
      ...initialValues(config),
      num_epochs: '0',
      learning_rate: '0',
      lora_dropout: '1',
      batch_size: '2.5',
      max_seq_length: '99999',
      seed: '',
      target_modules: 'q_proj, v proj',
    }
    const errors = validate(values, config)
    expect(errors.num_epochs).toBe('Epochs must be a whole number at least 1 and at most 1000')
    expect(errors.learning_rate).toBe('Learning rate must be a number greater than 0 and at most 1')
    expect(errors.lora_dropout).toBe('LoRA dropout must be a number at least 0 and less than 1')
    expect(errors.batch_size).toMatch(/whole number/)
    expect(errors.max_seq_length).toMatch(/at most 4096/)
    expect(errors.seed).toBe('Seed is required')
    expect(errors.target_modules).toMatch(/all-linear/)
  })

  it('are sent typed, with quant_bits only for QLoRA and blank options left to the server', () => {
    const lora = toParams(initialValues(config), config)
    expect(lora).toMatchObject({ adapter_type: 'lora', num_epochs: 3, learning_rate: 0.0002, lora_alpha: 32 })
    expect(lora).not.toHaveProperty('quant_bits')
    expect(lora).not.toHaveProperty('packing')
    const qlora = toParams({
      ...initialValues(config),
      adapter_type: 'qlora',
      quant_bits: '8',
      packing: 'true',
      target_modules: 'q_proj, v_proj',
      eval_steps: '5',
    }, config)
    expect(qlora).toMatchObject({ quant_bits: 8, packing: true, target_modules: ['q_proj', 'v_proj'], eval_steps: 5 })
  })

  it('send the distill settings only with the distill recipe', () => {
    const distill = toParams(initialValues(config), config)
    expect(distill).toMatchObject({ recipe: 'distill', distill_loss: 'kl', distill_prompts: 32, teacher_max_new_tokens: 128 })
    const template = toParams({ ...initialValues(config), recipe: 'template', distill_prompts: '-1' }, config)
    expect(template.recipe).toBe('template')
    expect(template).not.toHaveProperty('distill_prompts')
    expect(validate({ ...initialValues(config), recipe: 'template', distill_prompts: '-1' }, config)).toEqual({})
    expect(validate({ ...initialValues(config), distill_prompts: '-1' }, config).distill_prompts).toMatch(/at least 0/)
  })
})

describe('the form is drawn from the server', () => {
  it('shows, checks and sends a parameter the server adds, with its range', () => {
    const extra = { ...config.parameters.find((p) => p.name === 'lora_r')!, name: 'new_knob', label: 'New knob', max: 8 }
    const grown: ServerConfig = {
      ...config,
      defaults: { ...config.defaults, new_knob: 2 } as ServerConfig['defaults'],
      parameters: [...config.parameters, extra],
    }
    const values = initialValues(grown)
    expect(values.new_knob).toBe('2')
    expect(toParams(values, grown)).toMatchObject({ new_knob: 2 })
    expect(validate({ ...values, new_knob: '9' }, grown).new_knob).toBe('New knob must be a whole number at least 1 and at most 8')
  })

  it('sends list parameters in their JSON form', () => {
    const values = { ...initialValues(config), report_to: 'tensorboard', adapter_type: 'qlora', quant_bits: '8' }
    expect(toParams(values, config)).toMatchObject({ report_to: ['tensorboard'], quant_bits: 8 })
    expect(toParams({ ...values, report_to: 'none', target_modules: 'all-linear' }, config)).toMatchObject({
      report_to: 'none',
      target_modules: 'all-linear',
    })
  })
})
