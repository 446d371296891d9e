// Writes grammar/diagrams.html: the railroad diagrams of the policy grammar, from the parser itself.
// Chevrotain's page loads its scripts from a CDN; they are inlined from node_modules so it works offline.
import { createSyntaxDiagramsCode } from 'chevrotain'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { policyParser } from './parser.ts'

const assets = join(dirname(require.resolve('chevrotain/package.json')), 'diagrams')

export function diagramsHtml(): string {
  const html = createSyntaxDiagramsCode(policyParser().getSerializedGastProductions(), { title: 'Portcullis policy grammar' } as never)
  const local = (url: string) => readFileSync(join(assets, url.replace(/^.*\/diagrams\//, '')), 'utf8')
  return html
    .replace(/<link rel='stylesheet' href='([^']+)'>/g, (_, url: string) => `<style>\n${local(url)}\n</style>`)
    .replace(/<script src='([^']+)'><\/script>/g, (_, url: string) => `<script>\n${local(url)}\n</script>`)
}

if (import.meta.main) {
  const out = join(import.meta.dir, 'diagrams.html')
  writeFileSync(out, diagramsHtml())
  console.log(`wrote ${out}`)
}
