import { didYouMean } from '../policy/diagnostics.ts'
import type { Template } from '../policy/template.ts'
import { defineDirective } from './define.ts'

const CONTENT_TYPES = { json: 'application/json', text: 'text/plain; charset=utf-8' } as const

export default defineDirective({
  name: 'respond',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage: 'respond STATUS [json|text] ["BODY"]',
  summary: 'Answers from the gateway itself (health checks, mocks); the body may hold {templates}.',
  read(a) {
    const status = a.integer('an HTTP status', 200, 599)
    if (status === undefined) return undefined
    // `respond 200 hello world`: an unquoted body, read as one (the body error says to quote it).
    const word = a.peek()?.kind === 'word' ? a.peek()!.text : undefined
    const unquoted = word !== undefined && !didYouMean(word, ['json', 'text']) && !a.statement.words.some((w) => w.kind === 'string')
    const type = word !== undefined && !unquoted ? a.oneOf(['json', 'text'] as const, 'a body type') : 'text'
    if (type === undefined) return undefined
    let body: Template | undefined
    if (!a.done()) {
      const s = a.expect(['string'], 'a "body"')
      if (!s) return undefined
      body = a.template(s)
    }
    a.end()
    if (body && (status === 204 || status === 304)) return a.fail('bad-argument', `a ${status} response has no body`)
    if (body && type === 'json' && body.parts.every((p) => typeof p === 'string')) {
      try {
        JSON.parse(body.parts.join(''))
      } catch {
        return a.fail('bad-json', 'the body is not valid JSON', body.span)
      }
    }
    return { status, contentType: CONTENT_TYPES[type], body }
  },
  check(cfg, ctx) {
    if (cfg.body) ctx.checkTemplate(cfg.body, 'text')
  },
  compile(cfg, ctx) {
    const { status, contentType } = cfg
    if (!cfg.body)
      return function respond() {
        return new Response(null, { status })
      }
    const body = ctx.template(cfg.body, 'text')
    return function respond(req) {
      const text = body(req) ?? ''
      return new Response(text, {
        status,
        headers: { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)) },
      })
    }
  },
})
