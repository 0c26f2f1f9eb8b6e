/**
 * Every command in docs/runbooks is one this project really runs:
 * - each `sage …` goes through the CLI's own parser and option checks in-process (runCli) and
 *   reaches the database step: a database that refuses connections is the only failure allowed;
 *   placeholders (`<messageId>`, `N`, `D`, …) become valid sample values, `a|b` alternatives and
 *   `[optional]` parts are each tried;
 * - each `kubectl …` / `helm …` / `curl …` names objects, labels, ports, probe paths and value keys
 *   that `helm template` of deploy/helm/sage renders (release and namespace `sage`, so
 *   `<release>` = `<name>` = `sage`); every value key a runbook sets changes the rendered chart.
 * benchmarks/runbooks (`npm run runbooks:drill`) runs the relay-down and dead-letter runbooks for
 * real.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../libs/saga-outbox/src/cli/cli';
import { COMMANDS } from '../../libs/saga-outbox/src/cli/cli';
import type { CommandSpec } from '../../libs/saga-outbox/src/cli/command';
import { runbookCommands, runbookFiles, type RunbookCommand } from '../support/runbook-commands';
import { CHART_RELEASE, renderChart, type RenderedObject } from '../support/rendered-chart';

jest.setTimeout(600_000); // the first helm-check.sh run builds helm (about 2 minutes); later ones < 1 s

const ROOT = join(__dirname, '..', '..');
const all: RunbookCommand[] = runbookFiles().flatMap(runbookCommands);
const where = (c: RunbookCommand) => `${c.file}:${c.line}: ${c.text}`;

// --- sage -------------------------------------------------------------------------------------

const SAMPLES: Record<string, () => string> = {
  N: () => '10',
  ID: () => randomUUID(),
  TIME: () => '2026-01-01T00:00:00Z',
  SECONDS: () => '60',
  NAME: () => 'runbook-check',
};
const GLOBAL_VALUES: Record<string, string> = { 'database-url': 'URL', schema: 'NAME' };

function findCommand(words: readonly string[]): CommandSpec | undefined {
  return [...COMMANDS]
    .sort((a, b) => b.path.length - a.path.length)
    .find((c) => c.path.every((w, i) => words[i] === w));
}

/** Every concrete argv a synopsis line stands for (alternatives and optional parts expanded). */
function variants(words: readonly string[]): string[][] {
  let out: string[][] = [[]];
  for (const raw of words) {
    const word = raw
      .replace(/^\[/, '')
      .replace(/\]$/, '')
      .replace(/\.\.\.$/, '');
    const choices = word.includes('|') && !word.startsWith('<') ? word.split('|') : [word];
    out = out.flatMap((argv) => choices.map((c) => [...argv, c]));
  }
  return out;
}

/** Placeholders replaced by values the command accepts: the runbook's words, ready to run. */
function concrete(argv: readonly string[], spec: CommandSpec): string[] {
  const result: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word.startsWith('--') && !word.includes('=')) {
      result.push(word);
      const name = word.slice(2);
      const option = spec.options[name];
      const placeholder = option ? option.type === 'string' && option.value : GLOBAL_VALUES[name];
      if (placeholder && i + 1 < argv.length) {
        const value = argv[++i]!;
        const isPlaceholder = value === placeholder || /^<.*>$/.test(value);
        result.push(isPlaceholder ? (SAMPLES[placeholder]?.() ?? 'runbook-check') : value);
      }
    } else result.push(/^<.*>$/.test(word) ? randomUUID() : word);
  }
  return result;
}

describe('the sage commands in docs/runbooks', () => {
  const sageCommands = all.filter((c) => c.program === 'sage');

  it('finds them (the runbooks use the CLI)', () => {
    expect(sageCommands.length).toBeGreaterThan(20);
  });

  it.each(sageCommands.map((c) => [where(c), c] as const))(
    'the CLI accepts %s',
    async (_, command) => {
      const words = command.words.slice(1);
      const spec = findCommand(words);
      if (!spec) throw new Error(`${where(command)}: "sage" has no such command`);
      for (const argv of variants(words)) {
        let stderr = '';
        const code = await runCli(concrete(argv, spec), {
          // A port nothing listens on: parsing and option checks pass, then the connection fails.
          env: { DATABASE_URL: 'postgres://runbook@127.0.0.1:1/runbook' },
          out: () => undefined,
          err: (t) => void (stderr += t),
        });
        expect({ argv, code, stderr }).toEqual({
          argv,
          code: 1,
          stderr: expect.stringContaining('cannot use the database') as unknown,
        });
      }
    },
  );
});

// --- kubectl, helm, curl ----------------------------------------------------------------------

/** `<ns>`, `<release>`, `<name>` as helm-check.sh renders (release and namespace `sage`). */
const resolve = (word: string): string => word.replace(/<(ns|release|name)>/g, CHART_RELEASE);

function selector(text: string): Record<string, string> {
  return Object.fromEntries(text.split(',').map((pair) => pair.split('=') as [string, string]));
}

const hasLabels = (labels: Record<string, string> | undefined, wanted: Record<string, string>) =>
  Object.entries(wanted).every(([k, v]) => labels?.[k] === v);

/** The value after `flag` (`-l x` or `-l=x`). */
function flagValue(words: readonly string[], flag: string): string | undefined {
  const i = words.indexOf(flag);
  if (i >= 0) return words[i + 1];
  return words.find((w) => w.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

/** Problems of one kubectl command against the rendered objects; [] when it names what exists. */
function kubectlProblems(words: readonly string[], objects: RenderedObject[]): string[] {
  const args = words.slice(1).map(resolve);
  const positional = args.filter((w, i) => !w.startsWith('-') && !/^-/.test(args[i - 1] ?? ''));
  const [verb, target] = positional;
  const deployments = objects.filter((o) => o.kind === 'Deployment');
  const named = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name);
  const problems: string[] = [];
  const labels = flagValue(args, '-l');
  if (labels) {
    const wanted = selector(labels);
    const podsMatch = deployments.some((d) =>
      hasLabels(d.spec?.template?.metadata?.labels as Record<string, string>, wanted),
    );
    if (!podsMatch) problems.push(`no rendered pod template has the labels ${labels}`);
    if (verb === 'get' && target?.split(',').includes('deploy'))
      if (!deployments.some((d) => hasLabels(d.metadata.labels, wanted)))
        problems.push(`no rendered Deployment has the labels ${labels}`);
  }
  switch (verb) {
    case 'get':
    case 'logs':
      if (!labels) problems.push(`"kubectl ${verb}" without -l: add a check for it here`);
      break;
    case 'scale': {
      const [kind, name] = (target ?? '').split('/');
      if (kind !== 'deploy' || !named('Deployment', name!))
        problems.push(`no rendered Deployment ${target}`);
      break;
    }
    case 'port-forward': {
      const [kind, name] = (target ?? '').split('/');
      const service = kind === 'svc' ? named('Service', name!) : undefined;
      const remote = Number(positional[2]?.split(':').pop());
      if (!service) problems.push(`no rendered Service ${target}`);
      else if (!(service.spec.ports as { port: number }[]).some((p) => p.port === remote))
        problems.push(`Service ${name} has no port ${remote}`);
      break;
    }
    default:
      problems.push(`"kubectl ${verb}": add a check for it here`);
  }
  return problems;
}

/** The paths the rendered containers' HTTP probes use. */
function probePaths(objects: RenderedObject[]): Set<string> {
  const paths = new Set<string>();
  for (const d of objects.filter((o) => o.kind === 'Deployment'))
    for (const c of d.spec.template.spec.containers as Record<
      string,
      { httpGet?: { path: string } }
    >[])
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
        if (c[probe]?.httpGet) paths.add(c[probe].httpGet.path);
  return paths;
}

/**
 * `relay.autoscaling.minReplicas`-like keys: `--set` of the helm commands, and code spans of dotted
 * camelCase words whose first is a top-level key of values.yaml (log events like
 * `broker.dead_lettered` are snake_case).
 */
function valueKeysInProse(
  topLevel: ReadonlySet<string>,
): { key: string; value?: string; at: string }[] {
  const found: { key: string; value?: string; at: string }[] = [];
  for (const file of runbookFiles()) {
    const commands = runbookCommands(file);
    for (const c of commands.filter((c) => c.program === 'helm'))
      for (const [i, w] of c.words.entries())
        if (w === '--set')
          for (const pair of c.words[i + 1]!.split(',')) {
            const [key, value] = pair.split('=');
            found.push({ key: key!, value, at: where(c) });
          }
  }
  for (const file of runbookFiles()) {
    const text = readFileSync(join(ROOT, 'docs', 'runbooks', file), 'utf8');
    for (const m of text.matchAll(/`([a-zA-Z][a-zA-Z0-9-]*)\.([a-zA-Z0-9.-]+)(?:=([^`\s]+))?`/g))
      if (topLevel.has(m[1]!))
        found.push({ key: `${m[1]}.${m[2]}`, value: m[3], at: `${file}: ${m[0]}` });
  }
  return found;
}

describe('the kubectl, helm and curl commands in docs/runbooks', () => {
  let objects: RenderedObject[];
  beforeAll(async () => {
    objects = await renderChart();
  });

  const kubectl = all.filter((c) => c.program === 'kubectl');
  it('finds them', () => {
    expect(kubectl.length).toBeGreaterThan(0);
    expect(all.some((c) => c.program === 'helm')).toBe(true);
  });

  it.each(kubectl.map((c) => [where(c), c] as const))('%s names what the chart renders', (_, c) => {
    expect(kubectlProblems(c.words, objects)).toEqual([]);
  });

  it.each(all.filter((c) => c.program === 'curl').map((c) => [where(c), c] as const))(
    '%s asks a path the relay serves',
    (_, c) => {
      const url = new URL(c.words.find((w) => w.startsWith('http'))!);
      expect(probePaths(objects)).toContain(url.pathname);
      // The port the runbook port-forwards to is the Service's.
      const services = objects.filter((o) => o.kind === 'Service');
      expect(
        services.some((s) =>
          (s.spec.ports as { port: number }[]).some((p) => p.port === Number(url.port)),
        ),
      ).toBe(true);
    },
  );

  it.each(all.filter((c) => c.program === 'helm').map((c) => [where(c), c] as const))(
    '%s upgrades this chart',
    (_, c) => {
      expect(c.words[1]).toBe('upgrade');
      expect(existsSync(join(ROOT, c.words[3]!, 'Chart.yaml'))).toBe(true);
    },
  );

  it('every value key the runbooks set (--set, or named in the text) changes what the chart renders', async () => {
    const values = readFileSync(join(ROOT, 'deploy/helm/sage/values.yaml'), 'utf8');
    const topLevel = new Set([...values.matchAll(/^([a-zA-Z][\w-]*):/gm)].map((m) => m[1]!));
    const keys = valueKeysInProse(topLevel);
    expect(keys.map((k) => k.key)).toEqual(
      expect.arrayContaining(['relay.autoscaling.minReplicas', 'relay.image.tag']),
    );
    const baseline = JSON.stringify(objects);
    const unused: string[] = [];
    for (const { key, value, at } of keys) {
      const sample = value === undefined || /^<.*>$/.test(value) ? '3' : value;
      const rendered = JSON.stringify(await renderChart('--set', `${key}=${sample}`));
      if (rendered === baseline) unused.push(`${at}: --set ${key}=${sample} changes nothing`);
    }
    expect(unused).toEqual([]);
  });
});
