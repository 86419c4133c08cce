/**
 * Server-sent events (`text/event-stream`) from a stream of bytes, with `eventsource-parser` (the
 * WHATWG parsing rules: `\n`, `\r\n` or `\r` line ends, multi-line `data:` joined with `\n`, comments
 * and unknown fields ignored, an event dispatched at each blank line). UTF-8 is decoded across chunk
 * boundaries, so any split of the bytes gives the same events.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"

/**
 * One dispatched event.
 *
 * @since 0.1.0
 * @category models
 */
export interface Event {
  /** The `event:` field, when set. */
  readonly event: string | undefined
  /** The `id:` field, when set. */
  readonly id: string | undefined
  /** The `data:` lines, joined with `\n`. */
  readonly data: string
}

/**
 * An incremental decoder: bytes in, the events they complete out.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decoder {
  /** The events completed by these bytes (UTF-8 is decoded across calls); none once `overflowed`. */
  readonly feed: (bytes: Uint8Array) => Array<Event>
  /** The events completed by the end of the input. */
  readonly end: () => Array<Event>
  /**
   * True once one event grew past `maxEventBytes`: the decoder dropped it and reads nothing more.
   * @since 0.2.0
   */
  readonly overflowed: boolean
}

/**
 * Decoder options.
 * @since 0.2.0
 * @category models
 */
export interface DecoderOptions {
  /**
   * The largest single event: its unfinished line and its `data:` lines so far, counted in decoded
   * characters (one per byte for ASCII). Past it the decoder stops (`overflowed`). Comments and blank
   * lines do not count. It is checked once per `feed`, so an event may pass it by one piece.
   * @default unbounded
   */
  readonly maxEventBytes?: number | undefined
}

/**
 * A fresh decoder (one per stream).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDecoder = (options: DecoderOptions = {}): Decoder => {
  const decoder = new TextDecoder("utf-8")
  let pending: Array<Event> = []
  let endsWithCr = false
  let overflowed = false
  // eventsource-parser's own cap: it counts the unfinished line plus the event's data, in characters.
  const parser = createParser({
    onEvent: (message) => {
      pending.push({ event: message.event, id: message.id, data: message.data })
    },
    onError: (error) => {
      if (error.type === "max-buffer-size-exceeded") overflowed = true
    },
    maxBufferSize: options.maxEventBytes
  })
  const feedText = (text: string) => {
    if (text === "" || overflowed) return
    parser.feed(text)
    endsWithCr = text.endsWith("\r")
  }
  const take = () => {
    const out = pending
    pending = []
    return out
  }
  return {
    feed: (bytes) => {
      feedText(decoder.decode(bytes, { stream: true }))
      return take()
    },
    end: () => {
      feedText(decoder.decode())
      // A last "\r" is held back in case "\n" follows; at the end nothing follows, so "\n" ends that
      // line the same way (an event ended by "\r\r" is dispatched; an unfinished one still is not).
      if (endsWithCr && !overflowed) parser.feed("\n")
      return take()
    },
    get overflowed() {
      return overflowed
    }
  }
}

/**
 * The events in a byte stream; the stream's errors pass through. An unfinished last event is dropped, as the standard says.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Event, E, R> =>
  Stream.suspend(() => {
    const decoder = makeDecoder()
    return bytes.pipe(
      Stream.mapChunks((chunk) => {
        const out: Array<Event> = []
        for (const piece of chunk) out.push(...decoder.feed(piece))
        return Chunk.unsafeFromArray(out)
      }),
      Stream.concat(Stream.suspend(() => Stream.fromIterable(decoder.end())))
    )
  })
