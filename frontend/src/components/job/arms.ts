import type { ArmName } from '../../api/types'

export const ARM_LABELS: Record<ArmName, string> = {
  base: 'Base model',
  base_with_skill: 'Base + SKILL.md in context',
  adapter: 'Adapter (no skill in context)',
}
