/**
 * A message handed to a store in one piece: what `mailgate serve` gives a store that reads each message
 * whole anyway (`MessageStore.readsWholeMessages`), from the buffer the session already holds, instead of
 * a stream. It is an async iterable of that one chunk, so that any store reads it as it reads a stream;
 * readers that know it (the sinks' readWholeMessage) take `data` at once.
 */
export class WholeMessage implements AsyncIterable<Buffer> {
  constructor(readonly data: Buffer) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    yield this.data;
  }
}
