/**
 * Every alert of ops/prometheus/alerts.yml has a promtool unit test in ops/prometheus/alerts.test.yml
 * that sees it fire and, later in the same test, resolve (scripts/prometheus-alerts-test.sh runs
 * them with promtool). A new alert without such a test fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..', '..');

interface RulesFile {
  groups: { rules: { alert?: string; for?: string }[] }[];
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: unknown[] | null;
}
interface TestsFile {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: AlertTest[] }[];
}

const load = <T>(path: string): T => parse(readFileSync(join(ROOT, path), 'utf8')) as T;

/** promtool durations as used here (`90s`, `15m`, `1h30m`) in seconds. */
function seconds(duration: string): number {
  const parts = [...duration.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  if (parts.map((p) => p[0]).join('') !== duration) throw new Error(`bad duration ${duration}`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 } as const;
  return parts.reduce((total, p) => total + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
}

const alerts = load<RulesFile>('ops/prometheus/alerts.yml').groups.flatMap((g) =>
  g.rules.flatMap((r) => (r.alert ? [r.alert] : [])),
);
const tests = load<TestsFile>('ops/prometheus/alerts.test.yml');

it('the tests load ops/prometheus/alerts.yml', () => {
  expect(tests.rule_files).toEqual(['alerts.yml']);
  expect(alerts.length).toBeGreaterThanOrEqual(9);
});

it('names only alerts that exist', () => {
  const tested = tests.tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname));
  expect(tested.filter((name) => !alerts.includes(name))).toEqual([]);
});

it.each(alerts)('%s fires and then resolves in one test', (alert) => {
  const provingTests = tests.tests.filter((t) => {
    const checks = (t.alert_rule_test ?? [])
      .filter((a) => a.alertname === alert)
      .sort((a, b) => seconds(a.eval_time) - seconds(b.eval_time));
    const firstFiring = checks.findIndex((a) => (a.exp_alerts ?? []).length > 0);
    return (
      firstFiring >= 0 &&
      checks.slice(firstFiring + 1).some((a) => (a.exp_alerts ?? []).length === 0)
    );
  });
  expect(provingTests.map((t) => t.name)).not.toEqual([]);
});
