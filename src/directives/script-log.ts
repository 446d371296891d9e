// `script log "path.ts"`: a TypeScript function runs when the request is over, with its
// access-log line (it may add fields to it); its failures are logged and change nothing.
import { logStep } from '../script/run.ts'
import { defineDirective } from './define.ts'
import { describeScript, readScript, scriptSite, scriptUsage, scriptVersion, type ScriptConfig } from './script-common.ts'

export default defineDirective<ScriptConfig, 'log'>({
  name: 'script log',
  stage: 'log',
  places: ['route', 'defaults'],
  usage: scriptUsage('log'),
  summary:
    "Runs the module's default function (a LogScript) once the answer is delivered, with the request, caller and access-log line (it may add fields); a failure is logged and changes nothing.",
  read: (a) => readScript(a, 'log'),
  describe: describeScript,
  fingerprint: scriptVersion,
  compile: (cfg, ctx) => logStep(cfg.fn, scriptSite(cfg, ctx)),
})
