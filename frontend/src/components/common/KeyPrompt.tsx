import { useQueryClient } from '@tanstack/react-query'
import { useEffect, useState, type FormEvent } from 'react'
import { KEY_NEEDED_EVENT, storedKey, storeKey } from '../../api/client'

/** The API key box in the top bar: asked for once the server answers 401, kept in this tab's session
 * storage, sent on every call. "Forget" drops it (closing the tab does too). */
export function KeyPrompt() {
  const queryClient = useQueryClient()
  const [hasKey, setHasKey] = useState(() => storedKey() !== null)
  const [needed, setNeeded] = useState(false)
  const [draft, setDraft] = useState('')

  useEffect(() => {
    const onNeeded = () => setNeeded(true)
    window.addEventListener(KEY_NEEDED_EVENT, onNeeded)
    return () => window.removeEventListener(KEY_NEEDED_EVENT, onNeeded)
  }, [])

  const submit = (event: FormEvent) => {
    event.preventDefault()
    const key = draft.trim()
    if (!key) return
    storeKey(key)
    setDraft('')
    setHasKey(true)
    setNeeded(false)
    void queryClient.invalidateQueries()
  }

  const forget = () => {
    storeKey(null)
    setHasKey(false)
    queryClient.clear()
  }

  if (hasKey && !needed) {
    return (
      <div className="key-prompt">
        <span>API key set</span>
        <button type="button" className="link-button" onClick={forget}>
          Forget key
        </button>
      </div>
    )
  }
  if (!needed) return null
  return (
    <form className="key-prompt" onSubmit={submit}>
      <label htmlFor="api-key">{hasKey ? 'This key was refused; API key' : 'This server needs an API key'}</label>
      <input
        id="api-key"
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="sa_…"
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
      />
      <button type="submit">Use key</button>
    </form>
  )
}
