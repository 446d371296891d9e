// Edits a raw query string (without `?`) one parameter at a time. Every byte of the
// parameters not named stays as the client sent it: order, encoding (`%20` vs `+`,
// `~` vs `%7E`), empty values, `flag` without `=`, repeated names, empty pieces.
// Only `&` separates parameters, as in the WHATWG URL standard; `;` is data.

// A parameter's name as upstreams read it: `+` is a space, percent-escapes decoded as
// UTF-8, bad escapes kept literally. This is what URLSearchParams does, so a policy
// name matches `tok%65n` and `a+b` the way `request.query.NAME` and upstreams see them;
// otherwise `remove query token` could be dodged by spelling the name differently.
function decodeName(raw: string): string {
  if (!raw.includes('%') && !raw.includes('+')) return raw
  // `raw` holds no `&` or `=` (the caller split on them), so it parses as one name.
  return new URLSearchParams(raw).keys().next().value ?? ''
}

function nameOf(piece: string): string {
  const eq = piece.indexOf('=')
  return decodeName(eq === -1 ? piece : piece.slice(0, eq))
}

// Cheap check for the common case: a query that cannot hold any of the names.
function mayHold(raw: string, names: readonly string[]): boolean {
  if (raw === '') return false
  if (raw.includes('%') || raw.includes('+')) return true
  return names.some((n) => raw.includes(n))
}

function encodeValue(value: string): string {
  // toWellFormed: a lone surrogate (possible in a JWT claim) would make encodeURIComponent throw.
  return encodeURIComponent(value.toWellFormed())
}

// Removes every parameter whose decoded name is one of `names`; returns `raw` itself when none is.
export function removeParams(raw: string, names: readonly string[]): string {
  if (!mayHold(raw, names)) return raw
  const pieces = raw.split('&')
  const kept = pieces.filter((p) => p === '' || !names.includes(nameOf(p)))
  return kept.length === pieces.length ? raw : kept.join('&')
}

export function removeParam(raw: string, name: string): string {
  return removeParams(raw, [name])
}

// Replaces the first parameter called `name` in place (keeping how its name was spelled)
// and drops the later ones; appends `name=value` when there is none.
export function setParam(raw: string, name: string, value: string): string {
  const encoded = encodeValue(value)
  if (!mayHold(raw, [name])) return raw === '' ? `${encodeURIComponent(name)}=${encoded}` : `${raw}&${encodeURIComponent(name)}=${encoded}`
  const out: string[] = []
  let found = false
  for (const p of raw.split('&')) {
    if (p === '' || nameOf(p) !== name) out.push(p)
    else if (!found) {
      found = true
      const eq = p.indexOf('=')
      out.push(`${eq === -1 ? p : p.slice(0, eq)}=${encoded}`)
    }
  }
  if (!found) out.push(`${encodeURIComponent(name)}=${encoded}`)
  return out.join('&')
}
