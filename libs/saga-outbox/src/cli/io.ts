/** Where a command writes: process.stdout / stderr in main.ts, buffers in tests. */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  out(text: string): void;
  err(text: string): void;
}
