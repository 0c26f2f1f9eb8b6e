import { SagaOutboxError } from '../../core/errors';
import type { CrashRunReport } from './crash-run-report';

/**
 * A saga broke under the crash harness: thrown by `run`, `runScenario` and `runAllBoundaries` (code
 * `SAGA_CRASH_HARNESS_FAILED`). The message names the boundary (or the fault scenario), each
 * violated check or invariant, how often each step ran and committed, and how to rerun it alone;
 * `reports` holds the failing runs.
 */
export class CrashHarnessFailure extends SagaOutboxError {
  constructor(
    /** The saga's name. */
    readonly saga: string,
    /** The runs that broke, each with its problems, activity and log. */
    readonly reports: readonly CrashRunReport[],
    /** Runs in all (runAllBoundaries), to say "2 of 24". */
    total = reports.length,
  ) {
    super('SAGA_CRASH_HARNESS_FAILED', failureText(saga, reports, total));
  }
}

function failureText(saga: string, reports: readonly CrashRunReport[], total: number): string {
  if (reports.length === 1 && total === 1) return runText(saga, reports[0]!);
  return [
    `Crash harness: saga "${saga}" broke in ${reports.length} of ${total} runs:`,
    ...reports.map((r) => `\n${runText(saga, r)}`),
  ].join('\n');
}

function runText(saga: string, report: CrashRunReport): string {
  const where = report.boundary
    ? `at boundary: ${report.boundary.name}`
    : `in scenario: ${report.name} (no crash)`;
  const faults = report.faults.length
    ? `\n  faults: ${report.faults.map((f) => f.description).join('; ')}`
    : '';
  const outcome = report.boundary
    ? report.crashed
      ? `worker 1 was killed there; worker 2 recovered the saga and it ended "${report.status}"`
      : `the saga ended "${report.status}" without reaching the boundary`
    : `the saga ended "${report.status}"`;
  const rerun = report.boundary
    ? `harness.run(${JSON.stringify(report.boundary.name)})`
    : 'harness.runScenario(...) with the faults above';
  return [
    `Crash harness: saga "${saga}" broke ${where}${faults}`,
    ...report.problems.map((p) => `  ✗ ${indent(p)}`),
    `  ${outcome}${report.error ? ` (its error: ${report.error})` : ''}; saga id ${report.sagaId ?? '(none)'}`,
    `  what ran: ${report.activity.join('; ')}`,
    ...(report.log.length
      ? [`  last worker log lines:`, ...report.log.map((l) => `    ${l}`)]
      : []),
    `  rerun it alone: ${rerun}`,
  ].join('\n');
}

function indent(text: string): string {
  return text.replace(/\n/g, '\n    ');
}
