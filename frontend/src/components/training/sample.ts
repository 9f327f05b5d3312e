import type { PreviewExample } from '../../api/types'

/** A few examples, taken in turn from each generator, so the sample shows every kind the dataset has. */
export function sampleExamples(examples: PreviewExample[], size: number): PreviewExample[] {
  const groups = new Map<string, PreviewExample[]>()
  for (const ex of examples) groups.set(ex.generator, [...(groups.get(ex.generator) ?? []), ex])
  const queues = [...groups.values()]
  const picked: PreviewExample[] = []
  while (picked.length < size && queues.some((q) => q.length)) {
    for (const queue of queues) {
      const next = queue.shift()
      if (next && picked.length < size) picked.push(next)
    }
  }
  return picked
}
