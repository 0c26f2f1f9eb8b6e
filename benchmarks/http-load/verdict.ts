/**
 * Whether an HTTP load run passed: no HTTP error of any kind, and every saga where its request
 * says it must end. A run that fails any check exits non-zero.
 */
import type { HttpSummary } from './load';
import type { Verdict } from './result';
import type { SagaOutcomes } from './sagas';

export function verdictOf(
  http: HttpSummary,
  sagas: Pick<SagaOutcomes, 'orders' | 'shipments' | 'deadLetters'>,
  exitedEarly: readonly string[],
): Verdict {
  const failures: string[] = [];
  const fail = (n: number, what: string): void => {
    if (n > 0) failures.push(`${n} ${what}`);
  };
  if (http.ok === 0) failures.push('no order accepted (no 2xx answer)');
  fail(http.non2xx, `non-2xx answers (${JSON.stringify(http.statusCodes)})`);
  // autocannon counts timeouts among the errors: the rest are connection errors.
  fail(http.timeouts, 'requests timed out');
  fail(http.errors - http.timeouts, 'connection errors');
  const { orders, shipments } = sagas;
  fail(orders.missing, 'orders answered 202 but absent from the database');
  fail(orders.notTerminal, 'order sagas not terminal when the drain time was up (stuck)');
  fail(orders.byStatus.failed ?? 0, 'order sagas failed');
  fail(
    orders.wrongOutcomeCount,
    `order sagas ended other than their request implies (${orders.wrongOutcome.join(', ')})`,
  );
  fail(shipments.notCompleted, 'confirmed orders without a completed shipment saga');
  fail(shipments.unexpected, 'shipment sagas for orders that were not confirmed');
  for (const [service, n] of Object.entries(sagas.deadLetters))
    fail(n, `dead-lettered outbox/inbox messages in ${service}`);
  if (exitedEarly.length)
    failures.push(`services exited during the run: ${exitedEarly.join(', ')}`);
  return { ok: failures.length === 0, failures };
}
