/**
 * The operator console in a running app on real PostgreSQL (fetch, no browser; the browser test is
 * sage-console.e2e-spec.ts): the access policy and CSRF refuse what they must, actions go through
 * the CLI's store methods and name the operator in the audit log, everything from payloads and
 * brokers is escaped, and the sagas list pages by keyset without gaps or repeats.
 */
import { randomUUID } from 'node:crypto';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { orderSaga, startConsoleApp, type ConsoleApp } from '@test/support/console-app';
import type { JsonValue } from '../../core/json';
import { waitUntil } from '../../testing/async';
import { CSRF_COOKIE } from './console-security';

jest.setTimeout(60_000);

const OPERATOR = { 'x-operator': 'alice', 'x-can-act': 'yes' };
const VIEWER = { 'x-viewer': 'yes' };

let db: TestDatabase;
let app: ConsoleApp;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await startConsoleApp(db.connection);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

async function get(path: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${app.url}${path}`, { headers, redirect: 'manual' });
}

/** A form's CSRF cookie and token, as a browser gets them from a GET. */
async function csrfFor(
  headers: Record<string, string>,
): Promise<{ cookie: string; token: string }> {
  const response = await get('/sage/relay', headers);
  const setCookie = response.headers.get('set-cookie') ?? '';
  const token = new RegExp(`${CSRF_COOKIE}=([A-Za-z0-9_-]+)`).exec(setCookie)?.[1];
  if (!token) throw new Error(`no CSRF cookie in ${setCookie}`);
  return { cookie: `${CSRF_COOKIE}=${token}`, token };
}

async function post(
  path: string,
  headers: Record<string, string>,
  form: Record<string, string>,
): Promise<Response> {
  return fetch(`${app.url}${path}`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
    redirect: 'manual',
  });
}

/** The actors of `action` on `targetId`, sealed into the log or still pending (the sealer runs). */
async function actorsOf(action: string, targetId: string): Promise<string[]> {
  const { rows } = await withClient(db.connection.database, (c) =>
    c.query<{ actor: string }>(
      `SELECT actor FROM (
         SELECT actor, action, target_id FROM sage.audit_pending
         UNION ALL SELECT actor, action, target_id FROM sage.audit_log) a
       WHERE action = $1 AND target_id = $2`,
      [action, targetId],
    ),
  );
  return rows.map((r) => r.actor);
}

/** Publishes one message the broker refuses for good, and waits until it is dead-lettered. */
async function deadLetter(reason: string, payload: JsonValue = {}): Promise<string> {
  const destination = `payments-${randomUUID()}`;
  app.broker.setFault((m) =>
    m.destination === destination ? { error: reason, retryable: false } : undefined,
  );
  const id = await app.publish({ destination, type: 'payment.requested', payload });
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
  );
  app.broker.setFault(undefined);
  return id;
}

describe('access', () => {
  it('refuses a request the policy refuses with 403, security headers included', async () => {
    const response = await get('/sage/', {});
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('refused this request');
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('serves a viewer the pages with a CSP that forbids inline scripts', async () => {
    for (const path of ['/sage/', '/sage/dead-letters', '/sage/relay']) {
      const response = await get(path, VIEWER);
      expect(response.status).toBe(200);
      const csp = response.headers.get('content-security-policy')!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      const body = await response.text();
      expect(body).toContain('viewer · read-only');
      expect(body).not.toMatch(/<script>/); // only <script src=…>
    }
  });

  it('refuses an action from a viewer, and from an operator the policy does not let act', async () => {
    const id = await deadLetter('refused for the test');
    for (const headers of [VIEWER, { 'x-operator': 'bob' }]) {
      const { cookie, token } = await csrfFor(headers);
      const response = await post(
        `/sage/dead-letters/outbox/${id}/replay`,
        { ...headers, cookie },
        { _csrf: token, confirm: 'yes' },
      );
      expect(response.status).toBe(403);
      expect(await response.text()).toMatch(/may look but not act/);
    }
    const row = await withClient(db.connection.database, (c) =>
      c.query<{ status: string }>(`SELECT status FROM sage.outbox_message WHERE id = $1`, [id]),
    );
    expect(row.rows[0]!.status).toBe('dead_letter');
  });

  it('refuses a POST without the CSRF token, or with a token that is not the cookie’s', async () => {
    const id = await deadLetter('csrf test');
    const { cookie, token } = await csrfFor(OPERATOR);
    const missing = await post(
      `/sage/dead-letters/outbox/${id}/replay`,
      { ...OPERATOR, cookie },
      { confirm: 'yes' },
    );
    expect(missing.status).toBe(403);
    expect(await missing.text()).toContain('CSRF');
    const other = await csrfFor(OPERATOR);
    const mismatched = await post(
      `/sage/dead-letters/outbox/${id}/replay`,
      { ...OPERATOR, cookie },
      { _csrf: other.token === token ? `${token.slice(1)}A` : other.token, confirm: 'yes' },
    );
    expect(mismatched.status).toBe(403);
    const noCookie = await post(`/sage/dead-letters/outbox/${id}/replay`, OPERATOR, {
      _csrf: token,
      confirm: 'yes',
    });
    expect(noCookie.status).toBe(403);
  });
});

describe('actions', () => {
  it('replays a dead letter (delivered by the relay) and names the operator in the audit log', async () => {
    const id = await deadLetter('broker refused');
    const { cookie, token } = await csrfFor(OPERATOR);
    const unconfirmed = await post(
      `/sage/dead-letters/outbox/${id}/replay`,
      { ...OPERATOR, cookie },
      { _csrf: token },
    );
    expect(unconfirmed.status).toBe(400);
    const response = await post(
      `/sage/dead-letters/outbox/${id}/replay`,
      { ...OPERATOR, cookie },
      { _csrf: token, confirm: 'yes' },
    );
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(`/sage/dead-letters/outbox/${id}?done=replayed`);
    await app.broker.waitFor((published) => published.some((m) => m.id === id));
    expect(await actorsOf('outbox.replayed', id)).toEqual(['alice']);
  });

  it('discards a dead letter after its confirmation step', async () => {
    const id = await deadLetter('never deliver');
    const confirm = await get(`/sage/dead-letters/outbox/${id}/confirm?action=discard`, OPERATOR);
    expect(await confirm.text()).toContain('Discard this dead letter for good?');
    const { cookie, token } = await csrfFor(OPERATOR);
    const response = await post(
      `/sage/dead-letters/outbox/${id}/discard`,
      { ...OPERATOR, cookie },
      { _csrf: token, confirm: 'yes' },
    );
    expect(response.status).toBe(303);
    expect((await get(`/sage/dead-letters/outbox/${id}`, VIEWER)).status).toBe(404);
    expect(await actorsOf('outbox.discarded', id)).toEqual(['alice']);
  });
  it('releases an inbox dead letter after its confirmation step, naming the operator', async () => {
    const messageId = randomUUID();
    const consumer = 'payments.order-placed';
    await withClient(db.connection.database, (c) =>
      c.query(
        `INSERT INTO sage.inbox_message (consumer, message_id, processed_at, status, attempts, last_error, message)
         VALUES ($1, $2, now(), 'dead_letter', 5, 'handler threw <script>x</script>', '{"n": 1}'::jsonb)`,
        [consumer, messageId],
      ),
    );
    const list = await (await get(`/sage/dead-letters?consumer=${consumer}`, VIEWER)).text();
    expect(list).toContain(messageId);
    expect(list).toContain('handler threw &lt;script&gt;x&lt;/script&gt;');
    const confirm = await get(
      `/sage/dead-letters/inbox/entry/confirm?consumer=${consumer}&message=${messageId}`,
      OPERATOR,
    );
    expect(await confirm.text()).toContain('Release this inbox dead letter?');
    const { cookie, token } = await csrfFor(OPERATOR);
    const response = await post(
      '/sage/dead-letters/inbox/release',
      { ...OPERATOR, cookie },
      { _csrf: token, confirm: 'yes', consumer, message: messageId },
    );
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/sage/dead-letters?done=released');
    const entry = await get(
      `/sage/dead-letters/inbox/entry?consumer=${consumer}&message=${messageId}`,
      VIEWER,
    );
    expect(entry.status).toBe(404);
    expect(await actorsOf('inbox.released', `${consumer}/${messageId}`)).toEqual(['alice']);
  });
});

describe('saga actions', () => {
  /** A saga of the app's definition that failed going forward at charge-payment (as past a pivot). */
  async function failedSaga(): Promise<string> {
    const id = randomUUID();
    await withClient(db.connection.database, async (c) => {
      await c.query(
        `INSERT INTO sage.saga_instance (id, name, version, status, input, error, failed_step)
         VALUES ($1, 'order-placement', $2, 'failed', '{"orderId":"f1","customer":"c"}', 'card service down', 'charge-payment')`,
        [id, orderSaga.version],
      );
      await c.query(
        `INSERT INTO sage.saga_step (saga_id, name, position, status, attempts, result, error)
         VALUES ($1, 'reserve-stock', 0, 'completed', 1, '{"reservation":"r-f1"}', NULL),
                ($1, 'notify-warehouse', 1, 'completed', 1, '{"notified":true}', NULL),
                ($1, 'charge-payment', 2, 'failed', 1, NULL, 'card service down'),
                ($1, 'ship', 3, 'pending', 0, NULL, NULL)`,
        [id],
      );
    });
    return id;
  }

  it('retries a failed saga after its confirmation step; it completes and the audit log names the operator', async () => {
    const id = await failedSaga();
    expect(await (await get(`/sage/sagas/${id}`, VIEWER)).text()).not.toContain('saga-retry');
    const page = await (await get(`/sage/sagas/${id}`, OPERATOR)).text();
    expect(page).toContain('data-testid="saga-retry"');
    expect(page).not.toContain('data-testid="saga-compensate"');
    const confirm = await (await get(`/sage/sagas/${id}/confirm?action=retry`, OPERATOR)).text();
    expect(confirm).toContain('Retry this saga');
    const seenUpdatedAt = /name="seenUpdatedAt" value="([^"]+)"/.exec(confirm)![1]!;
    const { cookie, token } = await csrfFor(OPERATOR);
    const stale = await post(
      `/sage/sagas/${id}/retry`,
      { ...OPERATOR, cookie },
      {
        _csrf: token,
        confirm: 'yes',
        seenStatus: 'failed',
        seenUpdatedAt: new Date(Date.parse(seenUpdatedAt) - 1000).toISOString(),
      },
    );
    expect(stale.status).toBe(409);
    expect(await stale.text()).toContain('it changed meanwhile');
    const response = await post(
      `/sage/sagas/${id}/retry`,
      { ...OPERATOR, cookie },
      { _csrf: token, confirm: 'yes', seenStatus: 'failed', seenUpdatedAt },
    );
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(`/sage/sagas/${id}?done=retry`);
    expect((await app.sagas.waitFor(id)).status).toBe('completed');
    expect(await actorsOf('saga.retry_requested', id)).toEqual(['alice']);
    // Completed: no action is offered, and a replayed form is refused.
    expect(await (await get(`/sage/sagas/${id}`, OPERATOR)).text()).not.toContain('saga-actions');
    const again = await post(
      `/sage/sagas/${id}/retry`,
      { ...OPERATOR, cookie },
      { _csrf: token, confirm: 'yes', seenStatus: 'completed', seenUpdatedAt },
    );
    expect(again.status).toBe(409);
  });
});

describe('escaping', () => {
  it('escapes a saga input and a dead letter reason holding markup', async () => {
    const { sagaId } = await app.sagas.start('order-placement', {
      orderId: 'x1',
      customer: '<script>alert("input")</script>',
      failPayment: true,
    });
    await app.sagas.waitFor(sagaId);
    const saga = await (await get(`/sage/sagas/${sagaId}`, VIEWER)).text();
    expect(saga).toContain('&lt;script&gt;alert(');
    expect(saga).not.toContain('<script>alert');
    expect(saga).toContain('card declined &lt;b&gt;by issuer&lt;/b&gt;');
    const id = await deadLetter('<script>alert("reason")</script>', {
      note: '<img src=x onerror=alert(1)>',
    });
    for (const path of ['/sage/dead-letters', `/sage/dead-letters/outbox/${id}`, '/sage/relay']) {
      const page = await (await get(path, VIEWER)).text();
      expect(page).toContain('&lt;script&gt;alert(&quot;reason&quot;)&lt;/script&gt;');
      expect(page).not.toContain('<script>alert');
      expect(page).not.toContain('<img src=x');
    }
  });
});

describe('sagas list', () => {
  it('pages by keyset through sagas sharing one creation time, without gaps or repeats', async () => {
    const name = `paging-${randomUUID().slice(0, 8)}`;
    await withClient(db.connection.database, (c) =>
      c.query(
        `INSERT INTO sage.saga_instance (id, name, version, status, input, created_at, updated_at)
         SELECT gen_random_uuid(), $1, 'v1', 'completed', '{}'::jsonb, now() - interval '1 hour', now()
         FROM generate_series(1, 7)`,
        [name],
      ),
    );
    const seen: string[] = [];
    let path: string | null = `/sage/?name=${name}`;
    let pages = 0;
    const narrow = await startConsolePageSize(3);
    try {
      while (path) {
        const page: string = await (
          await fetch(`${narrow.url}${path}`, { headers: VIEWER })
        ).text();
        seen.push(...[...page.matchAll(/data-saga="([0-9a-f-]{36})"/g)].map((m) => m[1]!));
        const next: string | undefined = /href="([^"]+)"\s+data-testid="next-page"/.exec(page)?.[1];
        path = next ? next.replace(/&amp;/g, '&') : null;
        pages++;
      }
    } finally {
      await narrow.close();
    }
    expect(pages).toBe(3);
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
  });

  it('filters by status, idempotency key and age, and opens a saga by id', async () => {
    const { sagaId } = await app.sagas.start(
      'order-placement',
      { orderId: 'k1', customer: 'c' },
      { idempotencyKey: 'order-k1' },
    );
    await app.sagas.waitFor(sagaId);
    const byKey = await (await get('/sage/?name=order-placement&key=order-k1', VIEWER)).text();
    expect([...byKey.matchAll(/data-saga="([0-9a-f-]{36})"/g)].map((m) => m[1])).toEqual([sagaId]);
    const old = await (await get('/sage/?name=order-placement&key=order-k1&age=1d', VIEWER)).text();
    expect(old).toContain('no sagas match');
    const bad = await (await get('/sage/?age=soon', VIEWER)).text();
    expect(bad).toContain('age must be a number and a unit');
    const open = await get(`/sage/?id=${sagaId}`, VIEWER);
    expect(open.status).toBe(303);
    expect(open.headers.get('location')).toBe(`/sage/sagas/${sagaId}`);
  });
});

/** A second console app on the same database with a small page size. */
async function startConsolePageSize(pageSize: number): Promise<ConsoleApp> {
  return startConsoleApp(db.connection, { pageSize });
}
