/**
 * ops/prometheus/alerts.yml and ops/grafana/outbox-overview.json may name only metrics the code
 * registers: the set is read from a live SageMetrics registry, not copied by hand. (promtool checks
 * the rules' syntax in CI: scripts/test-all.sh.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { SageMetrics } from './sage-metrics';

const ROOT = join(__dirname, '../../../../..');

const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
]);

/** Metric names a PromQL expression selects (functions, keywords, labels and durations removed). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery selectors
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // grouping
    .replace(/\boffset\s+-?(?:\d+[smhdwy]+)+/g, ' ') // offset modifiers
    .replace(/\$\w+/g, ' ') // Grafana variables
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, ' '); // numbers
  const names: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const token = m[0];
    const after = stripped.slice(m.index + token.length);
    if (/^\s*\(/.test(after)) continue; // a function call
    if (PROMQL_KEYWORDS.has(token.toLowerCase())) continue;
    names.push(token);
  }
  return names;
}

/** The `expr:` of every rule in a Prometheus rules file (inline or folded block scalars). */
function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split('\n');
  const exprs: string[] = [];
  lines.forEach((line, i) => {
    const m = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!m) return;
    const indent = m[1]!.length;
    const inline = m[2]!.trim();
    if (inline && !/^[>|][-+]?$/.test(inline)) {
      exprs.push(inline.replace(/^['"]|['"]$/g, ''));
      return;
    }
    const body: string[] = [];
    for (const next of lines.slice(i + 1)) {
      if (next.trim() && next.length - next.trimStart().length <= indent) break;
      body.push(next.trim());
    }
    exprs.push(body.join(' '));
  });
  return exprs;
}

async function registeredNames(): Promise<Set<string>> {
  const registry = new Registry();
  const metrics = new SageMetrics({ registry });
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    // MetricType is a declare-only enum in prom-client's typings: compare its string value.
    if (String(m.type) === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  metrics.dispose();
  return names;
}

describe('ops artefacts name only metrics the code registers', () => {
  let known: Set<string>;
  beforeAll(async () => {
    known = await registeredNames();
  });

  it('the extractor finds metric names and skips functions, labels, keywords and numbers', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(foo_bucket{path="relay"}[5m]))) > 0.5 or bar_total offset 5m and on (x) baz / clamp_min(qux, 1e-9)',
      ),
    ).toEqual(['foo_bucket', 'bar_total', 'baz', 'qux']);
    // so a misspelt metric would be caught:
    expect(metricNamesIn('max(outbox_pending_mesages) > 5000').some((n) => !known.has(n))).toBe(
      true,
    );
  });

  it('ops/prometheus/alerts.yml', () => {
    const yaml = readFileSync(join(ROOT, 'ops/prometheus/alerts.yml'), 'utf8');
    const exprs = ruleExpressions(yaml);
    expect(exprs).toHaveLength((yaml.match(/^\s*- alert:/gm) ?? []).length);
    const used = new Set(exprs.flatMap(metricNamesIn));
    for (const required of [
      'outbox_pending_messages',
      'outbox_relay_running',
      'outbox_failed_total',
      'outbox_publish_duration_seconds_bucket',
      'outbox_dead_letter_messages',
    ])
      expect(used).toContain(required);
    expect([...used].filter((n) => !known.has(n))).toEqual([]);
  });

  it('ops/grafana/outbox-overview.json', () => {
    const dashboard = JSON.parse(
      readFileSync(join(ROOT, 'ops/grafana/outbox-overview.json'), 'utf8'),
    ) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    for (const panel of dashboard.panels) expect(panel.targets?.length).toBeGreaterThan(0);
    const unknown = exprs.flatMap(metricNamesIn).filter((n) => !known.has(n));
    expect(unknown).toEqual([]);
    const titles = dashboard.panels.map((p) => p.title).join(' | ');
    for (const topic of [
      /pending/i,
      /publish rate/i,
      /latency/i,
      /errors/i,
      /relay replicas/i,
      /pool/i,
    ])
      expect(titles).toMatch(topic);
  });
});
