// Reading a request body into memory, bounded: what `require hmac` (Content-Digest) and
// retries (the body sent again) keep.

export interface ReadPart {
  parts: Uint8Array[]
  total: number
  ended: boolean // false: more than `max` bytes came; the reader holds the rest
}

// Reads until the stream ends or more than `max` bytes have come. Rejects as the stream does.
export async function readUpTo(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }, max: number): Promise<ReadPart> {
  const parts: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done || value === undefined) return { parts, total, ended: true }
    total += value.byteLength
    parts.push(value)
    if (total > max) return { parts, total, ended: false }
  }
}

export const joined = (parts: Uint8Array[]): Uint8Array => (parts.length === 1 ? parts[0]! : Buffer.concat(parts))
