import { ApiError } from '../../api/client'

/** An error as the API said it: its message, and its code for the curious. */
export function ErrorMessage({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null
  const message = error instanceof Error ? error.message : String(error)
  const code = error instanceof ApiError ? error.code : null
  return (
    <div className="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      <span>{message}</span>
      {code ? <code className="error-code">{code}</code> : null}
    </div>
  )
}
