// Certificates for TLS tests, made with openssl in a temp dir: keys are P-256, and a
// certificate is self-signed (ca = null) or signed by another one made here.
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

export class Certs {
  readonly dir = mkdtempSync(join(tmpdir(), 'portcullis-certs-'))

  openssl(...args: string[]): string {
    const run = Bun.spawnSync(['openssl', ...args], { cwd: this.dir })
    if (run.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${run.stderr.toString()}`)
    return run.stdout.toString()
  }

  pem(name: string): string {
    return readFileSync(join(this.dir, name), 'utf8')
  }

  path(name: string): string {
    return join(this.dir, name)
  }

  // `name`.key and `name`.pem signed by `ca` (or self-signed), valid for `days` (negative: expired).
  make(name: string, subject: string, ca: string | null, days: number, serial: number, extra: string[] = []): void {
    if (ca === null) {
      this.openssl('req', '-x509', ...EC, '-days', String(days), '-subj', subject, ...extra, '-keyout', `${name}.key`, '-out', `${name}.pem`)
      return
    }
    this.openssl('req', ...EC, '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`)
    this.openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-set_serial',
      String(serial),
      '-days',
      String(days),
      '-out',
      `${name}.pem`,
    )
  }

  // What `openssl x509 -noout -fingerprint -sha256` says, colons removed, lower-cased.
  sha256(name: string): string {
    const line = this.openssl('x509', '-noout', '-fingerprint', '-sha256', '-in', `${name}.pem`)
    return line
      .slice(line.indexOf('=') + 1)
      .trim()
      .replaceAll(':', '')
      .toLowerCase()
  }
}
