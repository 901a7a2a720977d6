/**
 * A message already whole in memory, handed to a store as the AsyncIterable that MessageStore.deliver
 * takes: `mailgate serve` hands over its small messages so (bufferMessagesUpTo), and the sinks' readers
 * (src/sinks/collect.ts) take its bytes as they are instead of iterating.
 */
export class WholeMessage implements AsyncIterable<Buffer> {
  constructor(readonly data: Buffer) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.data.length > 0) yield this.data;
  }
}
