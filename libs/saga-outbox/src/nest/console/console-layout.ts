import { html, type Html } from './html';
import type { ConsoleGrant } from './console.options';

export type ConsoleSection = 'sagas' | 'dead-letters' | 'relay';

/** What every page knows about the request. */
export interface PageContext {
  /** The console's mount path as the browser sees it (global prefix included), no trailing slash. */
  base: string;
  grant: ConsoleGrant;
  /** Actions enabled for this request: the module allows them and the policy let this operator act. */
  canAct: boolean;
  /** The CSRF token to put in forms. */
  csrf: string;
}

/** The page shell: navigation, who is looking, the console's own stylesheet and script. */
export function layout(
  ctx: PageContext,
  section: ConsoleSection,
  title: string,
  body: Html,
  options: { refreshSeconds?: number } = {},
): Html {
  const nav = (to: ConsoleSection, path: string, label: string): Html =>
    html`<a href="${ctx.base}${path}" class="${section === to ? 'current' : ''}">${label}</a>`;
  const who = ctx.grant.operator ? `operator ${ctx.grant.operator}` : 'viewer';
  const mode = ctx.canAct ? 'actions enabled' : 'read-only';
  const refresh = options.refreshSeconds ?? 0;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        ${refresh ? html`<noscript><meta http-equiv="refresh" content="${refresh}" /></noscript>` : ''}
        <title>${title} · Sage console</title>
        <link rel="stylesheet" href="${ctx.base}/assets/console.css" />
        <script src="${ctx.base}/assets/console.js" defer></script>
      </head>
      <body data-refresh="${refresh}">
        <header class="top">
          <span class="brand">Sage</span
          >${nav('sagas', '/', 'Sagas')}${nav('dead-letters', '/dead-letters', 'Dead letters')}${nav('relay', '/relay', 'Relay & health')}<span
            class="who"
            data-testid="who"
            >${who} · ${mode}</span
          >
        </header>
        <main>${body}</main>
      </body>
    </html>`;
}

/** A hidden CSRF field for a POST form. */
export function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf}" />`;
}

/** "3m 12s" style durations. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A timestamp as ISO text with its age relative to the database clock. */
export function when(at: Date | null | undefined, now: Date): Html {
  if (!at) return html`-`;
  const diff = (now.getTime() - at.getTime()) / 1000;
  const rel = diff >= 0 ? `${duration(diff)} ago` : `in ${duration(-diff)}`;
  return html`<time datetime="${at.toISOString()}" title="${at.toISOString()}">${rel}</time>`;
}

export function badge(status: string): Html {
  return html`<span class="badge ${status}">${status.replace(/_/g, ' ')}</span>`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids in URLs are checked before any query sees them. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
