#!/usr/bin/env node
/**
 * `sage`: the operator CLI for Sage's sagas, outbox and inbox on PostgreSQL.
 *
 *   npx sage status
 *   npx sage --help            (in this repository: npm run sage -- …)
 *
 * Connection: DATABASE_URL (or --database-url), schema SAGE_SCHEMA (or --schema, default sage).
 * Exit codes: 0 done, 1 failed, 2 usage error.
 */
import 'reflect-metadata';
import { runCli } from '../cli/cli';

// `sage ... | head`: the reader went away; that is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

void runCli(process.argv.slice(2), {
  env: process.env,
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}).then((code) => {
  // exitCode, not exit(): let stdout drain when piped (e.g. into jq).
  process.exitCode = code;
});
