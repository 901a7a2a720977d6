import type { FileHandle } from "node:fs/promises";

/** Writes all of `buffer` at the file's position: write(2) may write less than asked (a full disk
 *  reports ENOSPC only on the next call). */
export async function writeFully(file: FileHandle, buffer: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesWritten } = await file.write(buffer, offset, buffer.length - offset);
    offset += bytesWritten;
  }
}
