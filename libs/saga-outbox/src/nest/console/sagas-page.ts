import type { SagaStatus } from '../../core/ports/saga-store';
import { SAGA_STATUSES } from '../../core/saga/saga-transitions';
import type {
  SagaListCursor,
  SagaPageFilter,
  SagaSummary,
} from '../../persistence/postgres/postgres-operator-queries';
import { html, query, type Html } from './html';
import { badge, duration, isUuid, layout, when, type PageContext } from './console-layout';

/** The sagas list's query string, as typed by the operator. */
export interface SagaListQuery {
  name?: string;
  status?: string;
  age?: string;
  key?: string;
  id?: string;
  before?: string;
}

export interface ParsedSagaListQuery {
  filter: SagaPageFilter;
  before: SagaListCursor | null;
  /** A saga id to open directly. */
  id?: string;
  problems: string[];
}

const AGE = /^(\d{1,6})\s*([smhd])$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const CURSOR = /^(\d{1,20})\.([0-9a-fA-F-]{36})$/;
const MAX_TEXT = 512;

/** The filters as typed, for refilling the form and links (strings only: `?name=a&name=b` is dropped). */
export function sagaListQueryText(raw: Record<string, unknown>): SagaListQuery {
  const out: SagaListQuery = {};
  for (const key of ['name', 'status', 'age', 'key', 'id', 'before'] as const) {
    const v = raw[key];
    if (typeof v === 'string') out[key] = v.slice(0, MAX_TEXT);
  }
  return out;
}

/** Reads the filters; a bad one becomes a problem shown on the page, never an error page. */
export function parseSagaListQuery(raw: Record<string, unknown>): ParsedSagaListQuery {
  const text = (key: keyof SagaListQuery): string | undefined => {
    const v = raw[key];
    return typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, MAX_TEXT) : undefined;
  };
  const problems: string[] = [];
  const filter: SagaPageFilter = {};
  const name = text('name');
  if (name) filter.name = name;
  const status = text('status');
  if (status) {
    if ((SAGA_STATUSES as readonly string[]).includes(status)) filter.status = status as SagaStatus;
    else problems.push(`status must be one of ${SAGA_STATUSES.join(', ')}`);
  }
  const key = text('key');
  if (key) filter.idempotencyKey = key;
  if (key && !name)
    problems.push(
      'give the saga name with an idempotency key: keys are unique per name, and with the name the lookup is one index probe',
    );
  const age = text('age');
  if (age) {
    const m = AGE.exec(age);
    if (m) filter.olderThanSeconds = Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    else problems.push('age must be a number and a unit: 30s, 10m, 2h or 7d');
  }
  let before: SagaListCursor | null = null;
  const cursor = text('before');
  if (cursor) {
    const m = CURSOR.exec(cursor);
    if (m && isUuid(m[2]!)) before = { createdAtMicros: m[1]!, id: m[2]!.toLowerCase() };
    else problems.push('the page cursor is not valid: start again from the first page');
  }
  const id = text('id');
  if (id && !isUuid(id)) problems.push('saga id must be a UUID');
  return { filter, before, id: id && isUuid(id) ? id.toLowerCase() : undefined, problems };
}

export interface SagaListView {
  counts: Record<SagaStatus, number>;
  sagas: SagaSummary[];
  next: SagaListCursor | null;
  query: SagaListQuery;
  problems: string[];
  names: readonly string[];
  now: Date;
  isFirstPage: boolean;
}

export function sagasPage(ctx: PageContext, view: SagaListView): Html {
  const q = view.query;
  const keep = { name: q.name, status: q.status, age: q.age, key: q.key };
  const counts = SAGA_STATUSES.map(
    (s) =>
      html`<a href="${ctx.base}/${query({ ...keep, status: s })}" data-testid="count-${s}"
        ><span class="c">${badge(s)}<b>${view.counts[s].toLocaleString('en')}</b></span></a
      >`,
  );
  const statusOptions = [
    html`<option value="">any</option>`,
    ...SAGA_STATUSES.map(
      (s) => html`<option value="${s}" ${q.status === s ? html`selected` : ''}>${s}</option>`,
    ),
  ];
  const rows = view.sagas.map(
    (s) =>
      html`<tr data-saga="${s.id}">
        <td class="mono"><a href="${ctx.base}/sagas/${s.id}">${s.id}</a></td>
        <td>${s.name}</td>
        <td class="mono">${s.version}</td>
        <td>
          ${badge(s.status)}${s.stalled ? html` <span class="badge failed" title="due and unclaimed">stalled</span>` : ''}
        </td>
        <td>${duration(s.ageSeconds)}</td>
        <td>${when(s.updatedAt, view.now)}</td>
        <td>
          ${s.awaitingSteps.length ? html`${s.awaitingSteps.join(', ')} <span class="muted">(due ${when(s.replyDeadline, view.now)})</span>` : '-'}
        </td>
        <td>
          ${s.failedStep ? html`<b>${s.failedStep}</b>: ` : ''}<span class="error"
            >${s.error ?? ''}</span
          >
        </td>
      </tr>`,
  );
  const nextLink = view.next
    ? html`<a
        href="${ctx.base}/${query({ ...keep, before: `${view.next.createdAtMicros}.${view.next.id}` })}"
        data-testid="next-page"
        >Older sagas →</a
      >`
    : html`<span class="muted">no older sagas</span>`;
  const body = html`<h1>Sagas</h1>
    <div class="counts">${counts}</div>
    <form class="filters card" method="get" action="${ctx.base}/">
      <label>name<input name="name" value="${q.name ?? ''}" list="saga-names" size="18" /></label>
      <datalist id="saga-names">
        ${view.names.map((n) => html`<option value="${n}"></option>`)}
      </datalist>
      <label
        >status<select name="status">
          ${statusOptions}
        </select></label
      >
      <label
        >older than<input name="age" value="${q.age ?? ''}" placeholder="10m, 2h, 7d" size="8"
      /></label>
      <label>idempotency key<input name="key" value="${q.key ?? ''}" size="16" /></label>
      <label
        >saga id<input name="id" value="${q.id ?? ''}" placeholder="open one saga" size="36"
      /></label>
      <button class="primary" type="submit">Filter</button> <a href="${ctx.base}/">clear</a>
    </form>
    ${view.problems.map((p) => html`<div class="warning">${p}</div>`)}
    <div class="card">
      <table data-testid="sagas">
        <thead>
          <tr>
            <th>id</th>
            <th>name</th>
            <th>version</th>
            <th>status</th>
            <th>age</th>
            <th>updated</th>
            <th>awaiting</th>
            <th>failed step / error</th>
          </tr>
        </thead>
        <tbody>
          ${
            rows.length
              ? rows
              : html`<tr>
                  <td colspan="8" class="muted">no sagas match</td>
                </tr>`
          }
        </tbody>
      </table>
      <div class="pager">
        ${view.isFirstPage ? '' : html`<a href="${ctx.base}/${query(keep)}">← newest</a>`}${nextLink}
      </div>
    </div>
    <p class="muted">
      Counts per status scan the saga table; the list reads its indexes newest first, a page at a
      time.
    </p>`;
  return layout(ctx, 'sagas', 'Sagas', body);
}
