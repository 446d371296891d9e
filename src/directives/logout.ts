// `logout`: `Authorization: Bearer <access token>` → 204; the login it belongs to (its access
// tokens and its refresh token) is revoked for every gateway sharing the store. An access token
// that has expired still ends its login (until a later refresh forgets it), so a client whose
// access token ran out can still log out.
import { unauthenticated } from '../runtime/auth.ts'
import { defineDirective } from './define.ts'
import { bearerToken, CHALLENGE, checkSession, invalidToken, storeFailure } from './session-common.ts'

export default defineDirective({
  name: 'logout',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage: 'logout',
  summary: 'Session logout: `Authorization: Bearer <access token>` gets 204 and its login (access and refresh tokens) is revoked on every instance.',
  read(a) {
    a.end()
    return {}
  },
  check(_cfg, ctx, at) {
    checkSession('logout', ctx, at)
  },
  compile(_cfg, c) {
    const store = c.store.sessions
    return async function logout(ctx) {
      const token = bearerToken(ctx)
      if (token === null) throw unauthenticated('logging out needs the access token: Authorization: Bearer <access token>', CHALLENGE)
      let revoked: boolean
      try {
        revoked = token !== '' && (await store.logout(token))
      } catch (err) {
        throw storeFailure(err)
      }
      if (!revoked) throw invalidToken()
      return new Response(null, { status: 204, headers: { 'cache-control': 'no-store' } })
    }
  },
})
