import { ApiError } from '../../api/client'

/** What a person can do about an error the API gave, when there is something to do. */
function errorAdvice(error: unknown): string | null {
  if (!(error instanceof ApiError)) return null
  if (error.status === 401) return 'Enter an API key in the “API key” box at the top of the page.'
  if (error.status === 429 || error.status === 503) {
    const wait = error.retryAfter ? ` in ${error.retryAfter} s` : ' in a moment'
    return error.status === 429
      ? `Try again${wait}, or cancel one of your queued jobs first.`
      : `The server is busy; try again${wait}.`
  }
  return null
}

/** An error as the API said it: its message, what to do about it, and its code for the curious. */
export function ErrorMessage({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null
  const message = error instanceof Error ? error.message : String(error)
  const code = error instanceof ApiError ? error.code : null
  const advice = errorAdvice(error)
  return (
    <div className="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      <span>{message}</span>
      {advice ? <span className="error-advice"> {advice}</span> : null}
      {code ? <code className="error-code">{code}</code> : null}
    </div>
  )
}
