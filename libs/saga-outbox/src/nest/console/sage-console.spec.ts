import { randomBytes } from 'node:crypto';
import { Test } from '@nestjs/testing';
import { InvalidOptionsError } from '../../core/errors';
import type { SagaRecord, StepRecord } from '../../core/ports/saga-store';
import { sealValue } from '../../core/protection/sealed-value';
import { csrfTokensMatch, newCsrfToken, readCookie } from './console-security';
import { ConsoleAccessPolicyMissingError } from './console-errors';
import { resolveConsoleOptions, toGrant, type SageConsoleModuleOptions } from './console.options';
import { consoleBase } from './console.guard';
import { escapeHtml, html } from './html';
import { jsonView } from './json-view';
import { graphNodes, sagaGraphSvg } from './saga-graph';
import { parseSagaListQuery } from './sagas-page';
import { sagaPage } from './saga-page';
import type { SagaDefinition } from '../../core/saga/saga-definition';
import { SageConsoleModule } from './sage-console.module';

describe('SageConsoleModule.forRoot', () => {
  it('refuses to start without an access policy, naming the option and the fix', () => {
    let error: unknown;
    try {
      // As an app module's `imports` would: the module is never defined.
      Test.createTestingModule({
        imports: [SageConsoleModule.forRoot({ path: '/sage' } as SageConsoleModuleOptions)],
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConsoleAccessPolicyMissingError);
    expect(error).toMatchObject({
      code: 'CONSOLE_ACCESS_POLICY_MISSING',
      message: expect.stringContaining('SageConsoleModule.forRoot({ access: (req) => ... })'),
    });
    expect(() => SageConsoleModule.forRoot(undefined as never)).toThrow(
      ConsoleAccessPolicyMissingError,
    );
  });

  it('checks path, actions, refreshSeconds and pageSize', () => {
    const access = () => true;
    for (const bad of [
      { path: 'sage' },
      { path: '/sa ge' },
      { path: '/../x' },
      { actions: 'yes' },
      { refreshSeconds: -1 },
      { pageSize: 0 },
      { pageSize: 501 },
    ])
      expect(() => resolveConsoleOptions({ access, ...bad } as never)).toThrow(InvalidOptionsError);
    expect(resolveConsoleOptions({ access })).toMatchObject({
      path: '/sage',
      actions: false,
      refreshSeconds: 10,
      pageSize: 50,
    });
  });

  it('is read-only by default and acts only for a named operator granted canAct', () => {
    expect(toGrant(false)).toBeUndefined();
    expect(toGrant(undefined)).toBeUndefined();
    expect(toGrant('yes')).toBeUndefined();
    expect(toGrant(true)).toEqual({ operator: undefined, canAct: false });
    expect(toGrant({ operator: 'alice' })).toEqual({ operator: 'alice', canAct: false });
    expect(toGrant({ operator: 'alice', canAct: true })).toEqual({
      operator: 'alice',
      canAct: true,
    });
    expect(toGrant({ operator: 'eve\nforged line', canAct: true })).toBeUndefined();
    expect(toGrant({ operator: ' ', canAct: true })).toBeUndefined();
  });
});

describe('CSRF double submit', () => {
  it('matches the cookie only, in constant time, and never a malformed token', () => {
    const token = newCsrfToken();
    expect(csrfTokensMatch(token, token)).toBe(true);
    expect(csrfTokensMatch(token, newCsrfToken())).toBe(false);
    expect(csrfTokensMatch(undefined, token)).toBe(false);
    expect(csrfTokensMatch(token, undefined)).toBe(false);
    expect(csrfTokensMatch('short', 'short')).toBe(false);
    expect(csrfTokensMatch(token, [token])).toBe(false);
  });

  it('reads its cookie among others', () => {
    expect(readCookie('a=1; sage_console_csrf=xyz; b=2', 'sage_console_csrf')).toBe('xyz');
    expect(readCookie(undefined, 'sage_console_csrf')).toBeUndefined();
  });

  it('scopes the cookie to the mount path, global prefix included', () => {
    const req = (url: string) => ({ method: 'GET', headers: {}, url });
    expect(consoleBase(req('/sage/relay?x=1'), '/sage')).toBe('/sage');
    expect(consoleBase(req('/api/sage/sagas/1'), '/sage')).toBe('/api/sage');
    expect(consoleBase(req('/sagex/sage/'), '/sage')).toBe('/sagex/sage');
  });
});

describe('escaping', () => {
  it('escapes every interpolated value, and leaves html-made markup alone', () => {
    expect(escapeHtml(`<script>"'&\``)).toBe('&lt;script&gt;&quot;&#39;&amp;&#96;');
    const name = '<img src=x onerror=alert(1)>';
    expect(html`<b>${name}</b>${html`<i>${'&'}</i>`}`.text).toBe(
      '<b>&lt;img src=x onerror=alert(1)&gt;</b><i>&amp;</i>',
    );
  });

  it('renders JSON escaped, without recursion, within depth and size caps', () => {
    let deep: unknown = '<script>alert(1)</script>';
    for (let i = 0; i < 200_000; i++) deep = { d: deep }; // far beyond any call stack
    const text = jsonView(deep).text;
    expect(text).toContain('nested too deep to show');
    expect(text).not.toContain('<script>');
    const wide = jsonView(Array.from({ length: 10_000 }, (_, i) => i)).text;
    expect(wide).toContain('more values not shown');
    expect(jsonView({ s: '<script>x</script>' }).text).toContain(
      '&quot;&lt;script&gt;x&lt;/script&gt;&quot;',
    );
  });

  it('shows an encrypted field as such, never its ciphertext or a subject key id', () => {
    const sealed = sealValue(
      '4111 1111 1111 1111',
      randomBytes(32),
      's:0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11',
      'saga:x:input',
      '/card',
    );
    const text = jsonView({ card: sealed, orderId: 'o-1' }).text;
    expect(text).toContain('encrypted (data subject key)');
    expect(text).not.toContain(sealed.ct);
    expect(text).not.toContain('0193a1e2-7c4b');
    const master = sealValue(1, randomBytes(32), 'm:2026-12', 'saga:x:input', '/n');
    expect(jsonView(master).text).toContain('encrypted (master key 2026-12)');
  });
});

describe('saga graph', () => {
  const step = (
    name: string,
    status: StepRecord['status'],
    startedAt: Date | null = new Date(),
  ): StepRecord =>
    ({
      name,
      status,
      attempts: 1,
      compensationAttempts: 0,
      result: null,
      error: null,
      startedAt,
      completedAt: null,
      compensatedAt: null,
      replyDeadline: null,
    }) as StepRecord;
  const saga = (steps: StepRecord[], status: SagaRecord['status'] = 'compensated') =>
    ({ id: 'x', name: 'order', version: 'v1', status, steps }) as unknown as SagaRecord;

  it('without a registered definition, follows the step records in order with their statuses', () => {
    const { nodes, fromDefinition } = graphNodes(
      saga([
        step('reserve', 'compensated'),
        step('charge', 'failed'),
        step('<ship>', 'pending', null),
      ]),
      undefined,
    );
    expect(fromDefinition).toBe(false);
    expect(nodes.map((n) => [n.name, n.status, n.dependsOn])).toEqual([
      ['reserve', 'compensated', []],
      ['charge', 'failed', ['reserve']],
      ['<ship>', 'not started', ['charge']],
    ]);
    const svg = sagaGraphSvg(nodes).text;
    expect(svg).toContain('data-step="&lt;ship&gt;"');
    expect(svg).not.toContain('<ship>');
    expect(svg.match(/class="edge"/g)).toHaveLength(2);
  });

  it('names a started step of a moving saga running, and a waiting one waiting for a reply', () => {
    const { nodes } = graphNodes(
      saga([step('a', 'pending'), step('b', 'waiting')], 'running'),
      undefined,
    );
    expect(nodes.map((n) => n.status)).toEqual(['running', 'waiting for reply']);
  });
});

describe('saga page', () => {
  const ctx = {
    base: '/sage',
    grant: { operator: undefined, canAct: false },
    canAct: false,
    csrf: 'x',
  };
  const record = {
    id: '0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11',
    name: 'order',
    version: 'v1',
    status: 'running',
    input: { customer: '<script>alert(1)</script>' },
    idempotencyKey: null,
    owner: null,
    leaseUntil: null,
    deadlineAt: null,
    error: null,
    failedStep: null,
    wakeAt: null,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    steps: [],
  } as unknown as SagaRecord;
  const definition = (version: string) =>
    ({ name: 'order', version, order: [], steps: new Map() }) as unknown as SagaDefinition<
      unknown,
      unknown
    >;

  it('warns when the registered definition has another version, or none is registered', () => {
    const now = new Date();
    expect(sagaPage(ctx, record, definition('v2'), now).text).toContain(
      'Definition version mismatch',
    );
    expect(sagaPage(ctx, record, undefined, now).text).toContain(
      'is not registered in this application',
    );
    const same = sagaPage(ctx, record, definition('v1'), now).text;
    expect(same).not.toContain('mismatch');
    expect(same).toContain('(registered here)');
    expect(same).not.toContain('<script>alert');
  });
});

describe('sagas list query', () => {
  it('reads filters and the keyset cursor, and reports bad ones instead of guessing', () => {
    const id = '0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11';
    expect(
      parseSagaListQuery({
        name: 'order',
        status: 'failed',
        age: '2h',
        before: `1765000000000001.${id}`,
      }),
    ).toEqual({
      filter: { name: 'order', status: 'failed', olderThanSeconds: 7200 },
      before: { createdAtMicros: '1765000000000001', id },
      id: undefined,
      problems: [],
    });
    expect(
      parseSagaListQuery({ status: 'lost', age: 'soon', before: 'x', id: 'nope' }).problems,
    ).toHaveLength(4);
    expect(parseSagaListQuery({ key: 'k' }).problems[0]).toContain('give the saga name');
  });
});
