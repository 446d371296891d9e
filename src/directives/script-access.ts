// `script access "path.ts"`: a TypeScript function decides whether the request goes on
// (nothing), ends it with a gateway error (ctx.refuse) or answers it (ctx.respond).
import { accessStep } from '../script/run.ts'
import { defineDirective } from './define.ts'
import { describeScript, readScript, scriptSite, scriptUsage, scriptVersion, type ScriptConfig } from './script-common.ts'

export default defineDirective<ScriptConfig, 'access'>({
  name: 'script access',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: scriptUsage('access'),
  summary:
    "Runs the module's default function (an AccessScript, portcullis/script) on the request and who is calling: it may refuse (a gateway error) or answer; 500 when it throws or runs past its budget (default 50ms).",
  read: (a) => readScript(a, 'access'),
  describe: describeScript,
  fingerprint: scriptVersion,
  compile: (cfg, ctx) => accessStep(cfg.fn, scriptSite(cfg, ctx)),
})
