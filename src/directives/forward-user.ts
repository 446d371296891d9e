// `forward user as NAME`: the upstream gets NAME = the standard base64 (RFC 4648 §4, padded) of
// the UTF-8 JSON of the bound user: the verifier's user info for a session, the verified claims
// for a JWT. Nothing when the request bound no user (`require key or session` taking a key); a
// client's own NAME never reaches the upstream, in any spelling.
import { canonicalName } from '../runtime/headers.ts'
import { defineDirective } from './define.ts'
import { headerName } from './values.ts'

export default defineDirective({
  name: 'forward user',
  stage: 'rewrite',
  places: ['route'],
  usage: 'forward user as HEADER',
  summary:
    "Sends the bound user to the upstream as HEADER: base64 of the JSON user info (a session's) or verified claims (a JWT's); clients cannot send it.",
  read(a) {
    if (!a.accept('as')) {
      const found = a.peek()
      return a.fail(found ? 'bad-argument' : 'missing-argument', `'forward user' expects 'as HEADER'${found ? `, found '${found.text}'` : ''}`)
    }
    const name = headerName(a)
    a.end()
    return name === undefined ? undefined : { name }
  },
  setsHeaders: (cfg) => [canonicalName(cfg.name)],
  describe: (cfg) => `forward user as ${cfg.name}`,
  check(_cfg, ctx, at) {
    if (!ctx.route.binds.has('user') && !ctx.route.binds.has('jwt'))
      ctx.bag.error('unbound-user', `'forward user' needs a route that identifies the user; the route ${ctx.route.label} identifies none`, at, {
        message: 'add a require line before it: require session or require jwt',
      })
  },
  compile(cfg) {
    const name = cfg.name.toLowerCase()
    return function forwardUser(ctx) {
      const id = ctx.identity
      const user = id?.user?.info ?? id?.jwt ?? null
      ctx.setUpstreamHeader(name, user === null ? null : Buffer.from(JSON.stringify(user), 'utf8').toString('base64'))
      return undefined
    }
  },
})
