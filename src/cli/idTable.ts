/**
 * A set of string ids with a number each, in typed arrays: 20 bytes a slot, nothing for the garbage
 * collector to trace. `shepherd run` keeps one entry per line of a batch file (to find duplicate ids,
 * and the ids already answered); as a `Map<string, number>` the live heap of a 1M-line file made V8
 * grow the process to 500 MB while checking it (bench/batch-memory).
 *
 * Ids are keyed by the first 128 bits of the SHA-1 of their code units: two different ids share a
 * key with a probability near 1e-27 for a million ids, far below the chance of a disk error. An id
 * without surrogates is hashed as UTF-8 (one-to-one for it); an id with any (a pair, or a lone one
 * such as `"row-\ud800"`, valid in JSON) as its UTF-16 code units after a 0xff byte, which no UTF-8
 * text holds. Hashing every id as UTF-8 would map each lone surrogate to U+FFFD, so that
 * `"row-\ud800"` and `"row-\udfff"` would be one id.
 * @internal
 */
import { hash } from "node:crypto"

const EMPTY = 0xffffffff

const SURROGATE = /[\uD800-\uDFFF]/

/** 0xff, then the UTF-16LE code units of `id` (lone surrogates kept as they are). */
const codeUnits = (id: string): Buffer => {
  const bytes = Buffer.allocUnsafe(1 + id.length * 2)
  bytes[0] = 0xff
  bytes.write(id, 1, "utf16le")
  return bytes
}

export class IdTable {
  private keys: Uint32Array
  private values: Uint32Array
  private mask: number
  private count = 0

  constructor(capacity = 1024) {
    let size = 16
    while (size < capacity * 2) size *= 2
    this.keys = new Uint32Array(size * 4)
    this.values = new Uint32Array(size).fill(EMPTY)
    this.mask = size - 1
  }

  get size(): number {
    return this.count
  }

  private static readonly scratch = new Uint32Array(4)

  /** The key of `id`, in a buffer reused by the next call. */
  private static key(id: string): Uint32Array {
    const digest = !SURROGATE.test(id) ? hash("sha1", id, "buffer") : hash("sha1", codeUnits(id), "buffer")
    const k = IdTable.scratch
    k[0] = digest.readUInt32LE(0)
    k[1] = digest.readUInt32LE(4)
    k[2] = digest.readUInt32LE(8)
    k[3] = digest.readUInt32LE(12)
    return k
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private slot(k: Uint32Array, keys: Uint32Array, values: Uint32Array, mask: number): number {
    let i = k[0]! & mask
    while (values[i] !== EMPTY) {
      const at = i * 4
      if (keys[at] === k[0] && keys[at + 1] === k[1] && keys[at + 2] === k[2] && keys[at + 3] === k[3]) return i
      i = (i + 1) & mask
    }
    return i
  }

  private grow(): void {
    const size = (this.mask + 1) * 2
    const keys = new Uint32Array(size * 4)
    const values = new Uint32Array(size).fill(EMPTY)
    const mask = size - 1
    for (let i = 0; i <= this.mask; i++) {
      if (this.values[i] === EMPTY) continue
      const k = this.keys.subarray(i * 4, i * 4 + 4)
      const j = this.slot(k, keys, values, mask)
      keys.set(k, j * 4)
      values[j] = this.values[i]!
    }
    this.keys = keys
    this.values = values
    this.mask = mask
  }

  /** Adds `id` with `value` (0 to 2^32 - 2) unless present; returns the value it already had, if any. */
  add(id: string, value: number): number | undefined {
    const k = IdTable.key(id)
    const i = this.slot(k, this.keys, this.values, this.mask)
    if (this.values[i] !== EMPTY) return this.values[i]
    this.keys.set(k, i * 4)
    this.values[i] = value
    this.count++
    if (this.count * 2 > this.mask + 1) this.grow()
    return undefined
  }

  /** The value of `id`, if present. */
  get(id: string): number | undefined {
    const i = this.slot(IdTable.key(id), this.keys, this.values, this.mask)
    return this.values[i] === EMPTY ? undefined : this.values[i]
  }

  has(id: string): boolean {
    return this.get(id) !== undefined
  }
}
