/// <reference lib="dom" />
/**
 * The operator console in a real browser (Debian's Chromium driven by playwright-core; install it
 * with scripts/chromium.sh) against a running Nest app on real PostgreSQL: an operator finds a
 * compensated saga in the list and sees its graph (the failed and the compensated steps) and its
 * timeline, replays a dead letter that the relay then delivers, and an operator the access policy
 * does not let act is refused. Screenshots of every page go to test-results/console/ (the ones in
 * docs/console/ are copies of these).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startConsoleApp, type ConsoleApp } from '@test/support/console-app';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { waitUntil } from '../../libs/saga-outbox/src/testing/async';

jest.setTimeout(180_000);

const SHOTS = join(__dirname, '..', '..', 'test-results', 'console');
const EXECUTABLE = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let db: TestDatabase;
let app: ConsoleApp;
let browser: Browser;
let compensatedId: string;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function contextFor(headers: Record<string, string>): Promise<BrowserContext> {
  return browser.newContext({ extraHTTPHeaders: headers, viewport: { width: 1280, height: 800 } });
}

/** How long to wait for the relay. Generous: CI runs other test files beside this one. */
const RELAY_WAIT_MS = 60_000;

/** A message the broker refuses for good, waited for until dead-lettered. */
async function deadLetter(reason: string): Promise<string> {
  const destination = 'payments';
  const type = `payment.requested.${Math.random().toString(36).slice(2, 8)}`;
  app.broker.setFault((m) => (m.type === type ? { error: reason, retryable: false } : undefined));
  const id = await app.publish({ destination, type, key: 'order-1001', payload: { amount: 42 } });
  await waitUntil(
    async () =>
      (
        await withClient(db.connection.database, (c) =>
          c.query(`SELECT 1 FROM sage.outbox_message WHERE id = $1 AND status = 'dead_letter'`, [
            id,
          ]),
        )
      ).rowCount === 1,
    'the message is dead-lettered',
    RELAY_WAIT_MS,
  );
  app.broker.setFault(undefined);
  return id;
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  db = await createTestDatabase();
  [app, browser] = await Promise.all([
    startConsoleApp(db.connection),
    chromium.launch({ executablePath: EXECUTABLE, args: ['--no-sandbox'] }),
  ]);
  for (let n = 1; n <= 3; n++) {
    const { sagaId } = await app.sagas.start('order-placement', {
      orderId: `100${n}`,
      customer: `customer-${n}`,
    });
    await app.sagas.waitFor(sagaId);
  }
  const { sagaId } = await app.sagas.start('order-placement', {
    orderId: '1004',
    customer: 'customer-4',
    failPayment: true,
  });
  compensatedId = sagaId;
  expect((await app.sagas.waitFor(sagaId)).status).toBe('compensated');
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await db?.drop();
});

it('an operator opens a compensated saga from the list and sees its graph and timeline', async () => {
  const context = await contextFor({ 'x-operator': 'alice', 'x-can-act': 'yes' });
  const page = await context.newPage();
  await page.goto(`${app.url}/sage/`);
  await page.getByTestId('count-compensated').waitFor();
  expect(await page.getByTestId('who').textContent()).toContain('operator alice · actions enabled');
  await shot(page, 'sagas-list');

  await page.locator(`tr[data-saga="${compensatedId}"] a`).click();
  await page.waitForURL(`**/sage/sagas/${compensatedId}`);
  const graph = page.getByTestId('graph');
  expect(await graph.locator('g[data-step="charge-payment"]').getAttribute('data-status')).toBe(
    'failed',
  );
  expect(await graph.locator('g[data-step="reserve-stock"]').getAttribute('data-status')).toBe(
    'compensated',
  );
  expect(await graph.locator('g[data-step="ship"]').getAttribute('data-status')).toBe(
    'not started',
  );
  // Drawn from the registered definition: four steps, an edge per dependency (ship has two).
  expect(await graph.locator('g.step').count()).toBe(4);
  expect(await graph.locator('path.edge').count()).toBe(3);
  const timeline = (await page.getByTestId('timeline').innerText()).replace(/\s+/g, ' ');
  expect(timeline).toContain('charge-payment failed');
  expect(timeline).toContain('reserve-stock compensated');
  expect(timeline).toContain('saga compensated');
  await shot(page, 'saga-compensated');
  await context.close();
});

it('an operator replays a dead letter after confirming, and the relay delivers it', async () => {
  const id = await deadLetter('broker refused: no route to exchange "payments"');
  const context = await contextFor({ 'x-operator': 'alice', 'x-can-act': 'yes' });
  const page = await context.newPage();
  page.on('dialog', (dialog) => void dialog.accept()); // the script's confirm() before the POST
  await page.goto(`${app.url}/sage/dead-letters`);
  await shot(page, 'dead-letters');
  await page.locator(`tr[data-message="${id}"] a`).click();
  expect(await page.getByTestId('last-error').textContent()).toContain('no route to exchange');
  await shot(page, 'dead-letter');
  await page.getByTestId('replay').click();
  await shot(page, 'replay-confirm');
  await page.getByTestId('confirm').click();
  await page.getByTestId('notice').waitFor();
  expect(await page.getByTestId('notice').textContent()).toContain('Replayed');
  await app.broker.waitFor((published) => published.some((m) => m.id === id), RELAY_WAIT_MS);
  await page.reload();
  expect(await page.locator('h1 .badge').textContent()).toBe('sent');
  await shot(page, 'replayed');

  await page.goto(`${app.url}/sage/relay`);
  await page.getByTestId('relay').waitFor();
  await shot(page, 'relay');
  await context.close();
});

it('refuses an action to an operator the access policy does not let act', async () => {
  const id = await deadLetter('consumer rejected the schema');
  const context = await contextFor({ 'x-operator': 'bob' });
  const page = await context.newPage();
  await page.goto(`${app.url}/sage/dead-letters/outbox/${id}`);
  expect(await page.getByTestId('replay').count()).toBe(0);
  expect(await page.getByTestId('who').textContent()).toContain('operator bob · read-only');
  // The confirmation step is not offered either: it leads back to the message.
  await page.goto(`${app.url}/sage/dead-letters/outbox/${id}/confirm?action=replay`);
  await page.waitForURL(`**/sage/dead-letters/outbox/${id}`);
  // A hand-made form with a valid CSRF token, as a determined user could post: refused.
  const [cookie] = await context.cookies();
  expect(cookie?.name).toBe('sage_console_csrf');
  await page.evaluate(
    ({ action, token }) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = action;
      for (const [name, value] of [
        ['_csrf', token],
        ['confirm', 'yes'],
      ]) {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = name!;
        input.value = value!;
        form.appendChild(input);
      }
      document.body.appendChild(form);
      form.submit();
    },
    { action: `/sage/dead-letters/outbox/${id}/replay`, token: cookie!.value },
  );
  await page.getByTestId('error').waitFor();
  expect(await page.getByTestId('error').textContent()).toContain('may look but not act');
  await shot(page, 'refused');
  const row = await withClient(db.connection.database, (c) =>
    c.query<{ status: string }>(`SELECT status FROM sage.outbox_message WHERE id = $1`, [id]),
  );
  expect(row.rows[0]!.status).toBe('dead_letter');
  await context.close();
});
