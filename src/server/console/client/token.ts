// The admin token: asked once, when a change first needs it, and kept only in this tab's
// session storage (gone when the tab closes). Reading needs no token.
import { ApiError } from './api.ts'
import { byId, win, type Dialog, type Field } from './dom.ts'

const KEY = 'portcullis.admin-token'

export const currentToken = (): string | null => win.sessionStorage.getItem(KEY)

const listeners: (() => void)[] = []
export const onTokenChange = (fn: () => void): void => void listeners.push(fn)

function setToken(value: string | null): void {
  if (value === null) win.sessionStorage.removeItem(KEY)
  else win.sessionStorage.setItem(KEY, value)
  listeners.forEach((fn) => fn())
}

export const forgetToken = (): void => setToken(null)

// Opens the token dialog; the token entered, or null when cancelled.
export function askToken(): Promise<string | null> {
  const dialog = byId<Dialog>('token-dialog')
  const input = byId<Field>('token-input')
  // Already asking (a second click while the dialog is open): this one waits for nothing.
  if (dialog.open) return Promise.resolve(null)
  input.value = ''
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        const value = input.value.trim()
        input.value = ''
        if (dialog.returnValue !== 'ok' || value === '') return resolve(null)
        setToken(value)
        resolve(value)
      },
      { once: true },
    )
  })
}

// Runs a change with the token (asked for when there is none). A token the gateway refuses is
// forgotten, so the next try asks again. Null when the user cancelled.
export async function withToken<T>(change: (token: string) => Promise<T>): Promise<T | null> {
  const token = currentToken() ?? (await askToken())
  if (token === null) return null
  try {
    return await change(token)
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || (err.status === 403 && /wrong admin token/.test(err.message)))) {
      forgetToken()
      throw new ApiError(err.status, err.code, `${err.message}: the token is forgotten; the next change asks for it again`)
    }
    throw err
  }
}
