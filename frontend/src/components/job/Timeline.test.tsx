import { render, screen, within } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { eventTitle } from './eventTitle'
import { Timeline } from './Timeline'

const EVENTS = [
  { id: 1, time: '2026-11-26T08:00:00Z', level: 'info', type: 'created', message: 'Job created', data: {} },
  { id: 2, time: '2026-11-26T08:00:30Z', level: 'warning', type: 'requeued', message: 'Worker w1 stopped', data: {} },
  { id: 3, time: '2026-11-26T08:02:00Z', level: 'error', type: 'failed', message: 'Job failed: [out_of_memory] Try QLoRA', data: {} },
]

describe('Timeline', () => {
  it('lists the events oldest first with their level', () => {
    render(<Timeline events={EVENTS} live={false} />)
    const items = within(screen.getByRole('list', { name: 'Job events' })).getAllByRole('listitem')
    expect(items.map((item) => item.dataset.type)).toEqual(['created', 'requeued', 'failed'])
    expect(items[2]).toHaveClass('level-error')
    expect(items[2]).toHaveTextContent('Failed (error)Job failed: [out_of_memory] Try QLoRA')
    expect(screen.getByText('3 events')).toBeInTheDocument()
  })

  it('says so when there is no event yet, and names unknown types readably', () => {
    render(<Timeline events={[]} live />)
    expect(screen.getByText('No event yet.')).toBeInTheDocument()
    expect(screen.getByText('0 events, live')).toBeInTheDocument()
    expect(eventTitle('something_new')).toBe('something new')
  })
})
