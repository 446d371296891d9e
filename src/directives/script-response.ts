// `script response "path.ts" [max SIZE]`: a TypeScript function edits the terminal's answer:
// headers in place (the body streams on), or the body, read only when the script asks for it.
import { responseStep } from '../script/run.ts'
import { defineDirective } from './define.ts'
import { describeScript, readScript, scriptSite, scriptUsage, scriptVersion, type ScriptConfig } from './script-common.ts'

export default defineDirective<ScriptConfig, 'response'>({
  name: 'script response',
  stage: 'response',
  places: ['route', 'defaults'],
  usage: scriptUsage('response'),
  summary:
    "Runs the module's default function (a ResponseScript) on the terminal's answer: edit headers, read and replace the body (read only when asked, at most SIZE, default 8mb), refuse or answer instead.",
  read: (a) => readScript(a, 'response'),
  describe: describeScript,
  fingerprint: scriptVersion,
  compile: (cfg, ctx) => responseStep(cfg.fn, scriptSite(cfg, ctx), cfg.cap),
})
