import { useId, useState, type DragEvent } from 'react'
import type { SkillSource } from '../../api/client'
import { useSkills } from '../../api/queries'
import { ErrorMessage } from '../common/ErrorMessage'

const ACCEPT = '.md,.markdown,.txt,.zip,.tar.gz,.tgz'

interface Props {
  source: SkillSource | null
  onChange: (source: SkillSource | null) => void
}

/** Choose the skill: upload a SKILL.md (or a skill folder as an archive), or pick one under the skills root. */
export function SkillPicker({ source, onChange }: Props) {
  const [mode, setMode] = useState<'file' | 'path'>(source?.kind ?? 'file')
  const [dragging, setDragging] = useState(false)
  const skills = useSkills()
  const id = useId()

  const chooseMode = (next: 'file' | 'path') => {
    setMode(next)
    onChange(null)
  }

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault()
    setDragging(false)
    const file = event.dataTransfer.files[0]
    if (file) onChange({ kind: 'file', file })
  }

  return (
    <fieldset className="skill-picker">
      <legend>Skill</legend>
      <div className="segmented" role="radiogroup" aria-label="Where the skill comes from">
        <label className={mode === 'file' ? 'active' : ''}>
          <input type="radio" name={`${id}-mode`} checked={mode === 'file'} onChange={() => chooseMode('file')} />
          Upload a file
        </label>
        <label className={mode === 'path' ? 'active' : ''}>
          <input type="radio" name={`${id}-mode`} checked={mode === 'path'} onChange={() => chooseMode('path')} />
          Skill on the server
        </label>
      </div>

      {mode === 'file' ? (
        <div
          className={`dropzone${dragging ? ' dragging' : ''}`}
          onDragOver={(e) => {
            e.preventDefault()
            setDragging(true)
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
          data-testid="dropzone"
        >
          <p>Drop a SKILL.md, or a skill folder as .zip / .tar.gz, here — or</p>
          <label htmlFor={`${id}-file`}>Choose a SKILL.md file</label>
          <input
            id={`${id}-file`}
            type="file"
            accept={ACCEPT}
            onChange={(e) => {
              const file = e.target.files?.[0]
              onChange(file ? { kind: 'file', file } : null)
            }}
          />
          {source?.kind === 'file' ? (
            <p className="chosen">
              Chosen: <strong>{source.file.name}</strong> ({Math.ceil(source.file.size / 1024)} KB)
            </p>
          ) : null}
        </div>
      ) : (
        <div className="field">
          <label htmlFor={`${id}-path`}>Skill under the skills root</label>
          {skills.isError ? <ErrorMessage error={skills.error} title="Could not list the skills" /> : null}
          <select
            id={`${id}-path`}
            value={source?.kind === 'path' ? source.path : ''}
            onChange={(e) => onChange(e.target.value ? { kind: 'path', path: e.target.value } : null)}
            aria-describedby={`${id}-path-help`}
          >
            <option value="">{skills.isPending ? 'Loading…' : 'Choose a skill'}</option>
            {skills.data?.data.map((skill) => (
              <option key={skill.path} value={skill.path}>
                {skill.path}
                {skill.name && !skill.path.startsWith(`${skill.name}/`) ? ` (${skill.name})` : ''}
              </option>
            ))}
          </select>
          <small id={`${id}-path-help`} className="help">
            {skills.data
              ? `${skills.data.count} skill${skills.data.count === 1 ? '' : 's'} under ${skills.data.root}`
              : 'Skills the server has under SKILL_ADAPTER_SKILLS_ROOT.'}
          </small>
        </div>
      )}
    </fieldset>
  )
}
