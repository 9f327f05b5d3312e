/** Preformatted text in a box that may scroll; focusable, so the keyboard can scroll it too. */
export function ScrollText({ children }: { children: string }) {
  return <pre tabIndex={0}>{children}</pre>
}
