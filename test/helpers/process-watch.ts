/** Records the process warnings and unhandled rejections seen until the test ends. */
import type { TestContext } from "node:test";

export function watchProcess(t: TestContext): { warnings: string[]; rejections: unknown[] } {
  const warnings: string[] = [];
  const rejections: unknown[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on("warning", onWarning);
  process.on("unhandledRejection", onRejection);
  t.after(() => {
    process.off("warning", onWarning);
    process.off("unhandledRejection", onRejection);
  });
  return { warnings, rejections };
}
