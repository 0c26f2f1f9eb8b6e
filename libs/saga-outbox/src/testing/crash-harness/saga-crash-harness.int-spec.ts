/**
 * The crash harness on embedded PGlite (and once on PostgreSQL): a saga whose effects all go
 * through `ctx.manager` (or are idempotent) passes every boundary; one that charges a card without
 * an idempotency key fails at the boundaries where that shows, with the boundary named; faults
 * injected per step drive retries, timeouts and compensation.
 */
import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { SagaCompensationContext, SagaStepContext } from '../../nest/saga-context';
import { Compensate, Saga, SagaStep } from '../../nest/decorators';
import { defineSaga } from '../../core/saga/saga-builder';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { CrashHarnessFailure } from './crash-harness-failure';
import { sagaCrashHarness, type SagaCrashHarnessOptions } from './saga-crash-harness';
import { StepFault } from './step-faults';

interface Checkout {
  orderId: string;
}

/** An outside system (a card processor): it outlives the workers, as a real one outlives a crash. */
@Injectable()
class PaymentGateway {
  charges: string[] = [];
  refunds: string[] = [];
  /** With a key, a repeated charge (or refund) is recognised and not made twice. */
  charge(order: string, key?: string): void {
    if (key !== undefined && this.charges.includes(key)) return;
    this.charges.push(key ?? order);
  }
  refund(order: string, key?: string): void {
    if (key !== undefined && this.refunds.includes(key)) return;
    this.refunds.push(key ?? order);
  }
  reset(): void {
    this.charges = [];
    this.refunds = [];
  }
}

class OutOfStockError extends Error {
  override name = 'OutOfStockError';
}

const gateway = new PaymentGateway();

/** Sends its idempotency keys to the gateway: a step run again after a crash charges nothing more. */
@Saga('careful-checkout')
class CarefulCheckoutSaga {
  constructor(private readonly payments: PaymentGateway) {}

  @SagaStep('reserve', { retry: { retryable: (e) => !(e instanceof OutOfStockError) } })
  async reserve(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`UPDATE shop.stock SET available = available - 1 WHERE sku = 'w'`);
  }

  @Compensate('reserve')
  async release(ctx: SagaCompensationContext<Checkout>) {
    await ctx.manager.query(`UPDATE shop.stock SET available = available + 1 WHERE sku = 'w'`);
  }

  @SagaStep('charge', { dependsOn: ['reserve'], timeoutMs: 150 })
  async charge(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`INSERT INTO shop.payment (order_id) VALUES ($1)`, [ctx.input.orderId]);
    this.payments.charge(ctx.input.orderId, ctx.idempotencyKey);
  }

  @Compensate('charge')
  async refund(ctx: SagaCompensationContext<Checkout>) {
    await ctx.manager.query(`DELETE FROM shop.payment WHERE order_id = $1`, [ctx.input.orderId]);
    this.payments.refund(ctx.input.orderId, ctx.idempotencyKey);
  }

  @SagaStep('confirm', { dependsOn: ['charge'], pivot: true })
  async confirm(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`UPDATE shop.payment SET confirmed = true WHERE order_id = $1`, [
      ctx.input.orderId,
    ]);
  }
}

/** The same saga, but the gateway is called without the keys: a re-run charges (or refunds) again. */
@Saga('careless-checkout')
class CarelessCheckoutSaga {
  constructor(private readonly payments: PaymentGateway) {}

  @SagaStep('reserve')
  async reserve(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`UPDATE shop.stock SET available = available - 1 WHERE sku = 'w'`);
  }

  @Compensate('reserve')
  async release(ctx: SagaCompensationContext<Checkout>) {
    await ctx.manager.query(`UPDATE shop.stock SET available = available + 1 WHERE sku = 'w'`);
  }

  @SagaStep('charge', { dependsOn: ['reserve'] })
  async charge(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`INSERT INTO shop.payment (order_id) VALUES ($1)`, [ctx.input.orderId]);
    this.payments.charge(ctx.input.orderId);
  }

  @Compensate('charge')
  async refund(ctx: SagaCompensationContext<Checkout>) {
    await ctx.manager.query(`DELETE FROM shop.payment WHERE order_id = $1`, [ctx.input.orderId]);
    this.payments.refund(ctx.input.orderId);
  }

  @SagaStep('confirm', { dependsOn: ['charge'], pivot: true })
  async confirm(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`UPDATE shop.payment SET confirmed = true WHERE order_id = $1`, [
      ctx.input.orderId,
    ]);
  }
}

/** Takes stock through the app's DataSource, outside the step's transaction: not undone by a crash. */
@Saga('audit-outside-the-transaction')
class AuditOutsideSaga {
  constructor(private readonly dataSource: DataSource) {}

  @SagaStep('record', { compensatable: false })
  async record(ctx: SagaStepContext<Checkout>) {
    await ctx.manager.query(`INSERT INTO shop.payment (order_id) VALUES ($1)`, [ctx.input.orderId]);
    // Not ctx.manager: its own connection, its own (auto-committed) transaction.
    await this.dataSource.query(`UPDATE shop.stock SET available = available - 1 WHERE sku = 'w'`);
  }
}

async function shopTables(dataSource: DataSource): Promise<void> {
  await dataSource.query(`CREATE SCHEMA IF NOT EXISTS shop`);
  await dataSource.query(
    `CREATE TABLE IF NOT EXISTS shop.stock (sku text PRIMARY KEY, available int NOT NULL CHECK (available >= 0))`,
  );
  await dataSource.query(
    `CREATE TABLE IF NOT EXISTS shop.payment (order_id text NOT NULL, confirmed boolean NOT NULL DEFAULT false)`,
  );
}

async function shopState(manager: EntityManager): Promise<{ payments: number; available: number }> {
  const [row] = (await manager.query(
    `SELECT (SELECT count(*)::int FROM shop.payment) AS payments,
            (SELECT available FROM shop.stock WHERE sku = 'w') AS available`,
  )) as [{ payments: number; available: number }];
  return row;
}

/** Checkout's harness: the user's side of what the harness asks for. */
function checkoutHarness(
  saga: SagaCrashHarnessOptions<Checkout>['saga'],
  extra: Partial<SagaCrashHarnessOptions<Checkout>> = {},
) {
  return sagaCrashHarness<Checkout>({
    saga,
    providers: [{ provide: PaymentGateway, useValue: gateway }],
    input: { orderId: 'order-1' },
    setup: shopTables,
    tables: ['shop.stock', 'shop.payment'],
    seed: async (manager) => {
      gateway.reset();
      await manager.query(`INSERT INTO shop.stock (sku, available) VALUES ('w', 5)`);
    },
    invariants: async ({ manager, saga: record }) => {
      const { payments, available } = await shopState(manager);
      if (record.status === 'completed') {
        expect({ payments, available, charges: gateway.charges.length }).toEqual({
          payments: 1,
          available: 4,
          charges: 1,
        });
      } else {
        // Compensated: nothing kept, nothing charged that was not refunded.
        expect({ payments, available }).toEqual({ payments: 0, available: 5 });
        expect(gateway.refunds).toHaveLength(gateway.charges.length);
        expect(gateway.charges.length).toBeLessThanOrEqual(1);
      }
    },
    ...extra,
  });
}

describe('sagaCrashHarness on embedded PGlite', () => {
  const careful = checkoutHarness(CarefulCheckoutSaga);
  const careless = checkoutHarness(CarelessCheckoutSaga);

  beforeAll(() => Promise.all([careful.start(), careless.start()]), 60_000);
  afterAll(() => Promise.all([careful.close(), careless.close()]));

  it('lists the boundaries of the saga from its graph, before running anything', () => {
    expect(careful.boundaries().map((b) => b.name)).toEqual([
      'crash before "reserve" committed',
      'crash after "reserve" committed, before "charge" started',
      'crash before "charge" committed',
      'crash after "charge" committed, before "confirm" started',
      'crash before "confirm" committed',
      'crash after "confirm" committed, before the saga completed',
      '"reserve" fails for good; crash after its failure was recorded, before compensation started',
      '"charge" fails for good; crash after its failure was recorded, before compensation started',
      '"charge" fails for good; crash before the compensation of "reserve" committed',
      '"charge" fails for good; crash after the compensation of "reserve" committed',
      '"confirm" fails for good; crash after its failure was recorded, before compensation started',
      '"confirm" fails for good; crash before the compensation of "charge" committed',
      '"confirm" fails for good; crash after the compensation of "charge" committed',
      '"confirm" fails for good; crash before the compensation of "reserve" committed',
      '"confirm" fails for good; crash after the compensation of "reserve" committed',
    ]);
  });

  it('a saga whose effects survive a crash once passes every boundary: killed there, recovered by a second worker', async () => {
    const report = await careful.runAllBoundaries();
    expect(report.runs).toHaveLength(careful.boundaries().length);
    for (const run of report.runs) {
      expect({ name: run.name, crashed: run.crashed, problems: run.problems }).toEqual({
        name: run.name,
        crashed: true,
        problems: [],
      });
      expect(run.status).toBe(run.boundary?.failingStep ? 'compensated' : 'completed');
    }
    const byName = new Map(report.runs.map((r) => [r.name, r]));
    // Killed inside the open transaction: it rolled back, and worker 2 ran the step again.
    const before = byName.get('crash before "charge" committed')!;
    expect(before.steps['charge']!.forward).toEqual({ ran: 2, committed: 1 });
    expect(before.commits.map((c) => `${c.step}@${c.worker}`)).toEqual([
      'reserve@1',
      'charge@2',
      'confirm@2',
    ]);
    // Killed right after the commit: the step is not run again, the next one runs in worker 2.
    const after = byName.get('crash after "charge" committed, before "confirm" started')!;
    expect(after.steps['charge']!.forward).toEqual({ ran: 1, committed: 1 });
    expect(after.commits.map((c) => `${c.step}@${c.worker}`)).toEqual([
      'reserve@1',
      'charge@1',
      'confirm@2',
    ]);
    // A compensation killed before its commit runs again in worker 2, dependants first.
    const compensation = byName.get(
      '"confirm" fails for good; crash before the compensation of "charge" committed',
    )!;
    expect(compensation.steps['charge']!.compensate).toEqual({ ran: 2, committed: 1 });
    expect(compensation.commits.filter((c) => c.phase === 'compensate').map((c) => c.step)).toEqual(
      ['charge', 'reserve'],
    );
    // The crash-free runs each scenario was compared with.
    expect(report.references.map((r) => [r.name, r.status, r.crashed])).toEqual([
      ['no faults', 'completed', false],
      ['"reserve" fails for good', 'compensated', false],
      ['"charge" fails for good', 'compensated', false],
      ['"confirm" fails for good', 'compensated', false],
    ]);
  }, 60_000);

  it('a step that charges a card without an idempotency key fails at the boundary where it shows, named in the message', async () => {
    const failure = await careless.run('crash before "charge" committed').then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(CrashHarnessFailure);
    const message = (failure as CrashHarnessFailure).message;
    expect(message).toContain(
      'Crash harness: saga "careless-checkout" broke at boundary: crash before "charge" committed',
    );
    expect(message).toContain('✗ invariant failed: expect(received).toEqual(expected)');
    expect(message).toMatch(/- +"charges": 1,\n.*\+ +"charges": 2,/);
    expect(message).toContain(
      'worker 1 was killed there; worker 2 recovered the saga and it ended "completed"',
    );
    expect(message).toContain(
      'what ran: "reserve" ran 1× committed 1×; "charge" ran 2× committed 1×',
    );
    expect(message).toContain('rerun it alone: harness.run("crash before \\"charge\\" committed")');
  }, 30_000);

  it('runAllBoundaries fails once, listing exactly the boundaries where the careless saga breaks', async () => {
    const failure = await careless.runAllBoundaries().then(
      () => undefined,
      (error: unknown) => error as CrashHarnessFailure,
    );
    expect(failure).toBeInstanceOf(CrashHarnessFailure);
    expect(failure!.reports.map((r) => r.name)).toEqual([
      'crash before "charge" committed',
      '"confirm" fails for good; crash before the compensation of "charge" committed',
    ]);
    expect(failure!.message.split('\n')[0]).toBe(
      'Crash harness: saga "careless-checkout" broke in 2 of 15 runs:',
    );
    // The refund made twice: the compensation ran again after the crash, calling the gateway again.
    expect(failure!.message).toContain(
      'broke at boundary: "confirm" fails for good; crash before the compensation of "charge" committed',
    );
    expect(failure!.reports[1]!.steps['charge']!.compensate).toEqual({ ran: 2, committed: 1 });
  }, 60_000);

  describe('fault injection', () => {
    it('a retryable throw on the first attempt: retried, the saga completes, the step committed once', async () => {
      const report = await careful.runScenario([StepFault.throwOnce('charge')]);
      expect(report.status).toBe('completed');
      expect(report.steps['charge']!.forward).toEqual({ ran: 2, committed: 1 });
      // Run twice, charged once: the gateway knew the step's idempotency key.
      expect(gateway.charges).toEqual([expect.stringMatching(/:charge$/)]);
    });

    it("a throw the step's retry policy rejects: no retry, the saga compensates", async () => {
      const report = await careful.runScenario([
        StepFault.throwOnce('reserve', { at: 'start', error: new OutOfStockError('none left') }),
      ]);
      expect(report.status).toBe('compensated');
      expect(report.error).toBe('step "reserve" failed: OutOfStockError: none left');
      expect(report.steps['reserve']!.forward).toEqual({ ran: 1, committed: 0 });
    });

    it('a step failing for good: its attempts used up, the steps before it compensated', async () => {
      const report = await careful.runScenario([StepFault.failForGood('charge')]);
      expect(report.status).toBe('compensated');
      expect(report.steps['charge']!.forward).toEqual({ ran: 3, committed: 0 });
      expect(report.steps['reserve']!.compensate).toEqual({ ran: 1, committed: 1 });
    });

    it('a step outlasting its timeoutMs: the attempt fails with StepTimeoutError and is retried', async () => {
      const report = await careful.runScenario([StepFault.timeout('charge')]);
      expect(report.status).toBe('completed');
      expect(report.steps['charge']!.forward).toEqual({ ran: 2, committed: 1 });
    });

    it('a compensation that throws once is retried, and still undoes its step once', async () => {
      const report = await careful.runScenario([
        StepFault.failForGood('confirm'),
        StepFault.throwOnce('reserve', { phase: 'compensate' }),
      ]);
      expect(report.status).toBe('compensated');
      expect(report.steps['reserve']!.compensate).toEqual({ ran: 2, committed: 1 });
    });

    it('faults combine with crashes: the harness-wide faults apply to every run', async () => {
      const harness = checkoutHarness(CarefulCheckoutSaga, {
        faults: [StepFault.throwOnce('charge')],
      });
      try {
        const report = await harness.run('crash before "charge" committed');
        // Attempt 1 failed (injected), attempt 2 was killed before its commit, worker 2 ran attempt 3.
        expect(report.steps['charge']!.forward).toEqual({ ran: 3, committed: 1 });
      } finally {
        await harness.close();
      }
    }, 30_000);
  });

  it('a step using another connection than ctx.manager waits for ever on PGlite: the run fails as not ending, and frees the database', async () => {
    const harness = sagaCrashHarness<Checkout>({
      saga: AuditOutsideSaga,
      input: { orderId: 'order-1' },
      setup: shopTables,
      tables: ['shop.stock', 'shop.payment'],
      seed: (m) => m.query(`INSERT INTO shop.stock (sku, available) VALUES ('w', 5)`),
      runTimeoutMs: 1_000,
    });
    try {
      for (let run = 0; run < 2; run++) {
        // Twice: the first run's stuck transaction was rolled back, the second gets as far.
        await expect(harness.runScenario()).rejects.toThrow(
          /in scenario: no faults \(no crash\)\n {2}✗ the saga did not end within 1000 ms \(runTimeoutMs\): it is "running"; steps: record=pending\./,
        );
      }
    } finally {
      await harness.close();
    }
  }, 30_000);

  it('says what to fix when the harness is misconfigured', () => {
    const command = () => ({ destination: 'payments', type: 'payment.authorize', payload: null });
    const remote = defineSaga('with-remote')
      .step('authorize', { kind: 'remote', run: command, compensate: command })
      .build();
    expect(() => sagaCrashHarness({ saga: remote, input: {} })).toThrow(
      new InvalidOptionsError(
        'sagaCrashHarness remote',
        `step "authorize" of saga "with-remote" is remote, and the harness plays its participant: give its replies, e.g. remote: { 'authorize': { forward: (command) => ({ ok: true, result: ... }) } }`,
      ),
    );
    expect(() =>
      checkoutHarness(CarefulCheckoutSaga, { faults: [StepFault.throwOnce('ship')] }),
    ).toThrow(
      'Invalid Sage option "sagaCrashHarness faults": "ship" is not a step of saga "careful-checkout" (its steps: "reserve", "charge", "confirm")',
    );
    expect(() =>
      checkoutHarness(CarefulCheckoutSaga, { faults: [StepFault.timeout('reserve')] }),
    ).toThrow(
      'Invalid Sage option "sagaCrashHarness faults": step "reserve" of saga "careful-checkout" has no timeoutMs, so it cannot time out: set { timeoutMs } on the step to test its timeout',
    );
    expect(() => checkoutHarness(PaymentGateway)).toThrow(
      'Invalid Sage option "saga": class PaymentGateway has no @Saga() decorator: pass the saga provider class, or a defineSaga(...).build() definition',
    );
    expect(() =>
      checkoutHarness(CarefulCheckoutSaga, { tables: ['shop.stock; DROP TABLE x'] }),
    ).toThrow(
      'Invalid Sage option "tables": "shop.stock; DROP TABLE x" is not a table name: give "table" or "schema.table" (letters, digits, "_", "$")',
    );
    return expect(careful.run('crash somewhere')).rejects.toThrow(
      'Invalid Sage option "boundary": saga "careful-checkout" has no boundary named "crash somewhere"; harness.boundaries() lists them',
    );
  });
});

/**
 * On PostgreSQL, a step writing through the app's DataSource instead of `ctx.manager` commits that
 * write on its own connection: a crash before the step's commit leaves it behind, and the rerun
 * writes it again. (On PGlite the same step would wait for ever: one session serves every
 * connection, and the step's open transaction holds it.)
 */
describe('sagaCrashHarness on PostgreSQL', () => {
  let db: TestDatabase | undefined;

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
  }, 30_000);
  afterAll(() => db?.drop(), 30_000);

  it('finds an effect written outside ctx.manager, which the crash does not roll back', async () => {
    const c = db!.connection;
    const harness = sagaCrashHarness<Checkout>({
      saga: AuditOutsideSaga,
      database: {
        url: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
      },
      input: { orderId: 'order-1' },
      setup: shopTables,
      tables: ['shop.stock', 'shop.payment'],
      seed: (m) => m.query(`INSERT INTO shop.stock (sku, available) VALUES ('w', 5)`),
      invariants: async ({ manager }) => {
        expect(await shopState(manager)).toEqual({ payments: 1, available: 4 });
      },
    });
    try {
      // After the commit, all is well; before it, the stock was taken twice.
      await harness.run('crash after "record" committed, before the saga completed');
      await expect(harness.run('crash before "record" committed')).rejects.toThrow(
        /broke at boundary: crash before "record" committed\n {2}✗ invariant failed: [\s\S]*"available": 4,[\s\S]*"available": 3,/,
      );
    } finally {
      await harness.close();
    }
  }, 60_000);
});
