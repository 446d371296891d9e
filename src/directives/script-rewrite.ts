// `script rewrite "path.ts"`: a TypeScript function edits the upstream request (ctx.upstream:
// path, query, headers), with what the access stage learned about the caller.
import { rewriteStep } from '../script/run.ts'
import { defineDirective } from './define.ts'
import { describeScript, readScript, scriptSite, scriptUsage, scriptVersion, type ScriptConfig } from './script-common.ts'

export default defineDirective<ScriptConfig, 'rewrite'>({
  name: 'script rewrite',
  stage: 'rewrite',
  places: ['route', 'defaults'],
  usage: scriptUsage('rewrite'),
  summary:
    "Runs the module's default function (a RewriteScript) to edit the upstream request's path, query and headers (a header it sets replaces the client's in any spelling); it may also refuse or answer.",
  read: (a) => readScript(a, 'rewrite'),
  describe: describeScript,
  fingerprint: scriptVersion,
  compile: (cfg, ctx) => rewriteStep(cfg.fn, scriptSite(cfg, ctx)),
})
