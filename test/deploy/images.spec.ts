/**
 * deploy/images/Dockerfile, statically: the settings the chart (deploy/helm/sage) relies on are in
 * every image, and the images match the chart's values. scripts/images-test.sh builds and runs the
 * images (podman; outside jest, as it needs root and takes a minute or more).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

interface Stage {
  from: string;
  name: string;
  lines: string[];
}

/** The Dockerfile's stages (instructions joined across `\` continuations, comments dropped). */
function stages(text: string): { args: string[]; stages: Stage[] } {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const args: string[] = [];
  const result: Stage[] = [];
  for (const line of instructions) {
    const from = /^FROM\s+(\S+)\s+AS\s+(\S+)$/i.exec(line);
    if (from) result.push({ from: from[1]!, name: from[2]!, lines: [] });
    else if (result.length === 0) args.push(line);
    else result[result.length - 1]!.lines.push(line);
  }
  return { args, stages: result };
}

const dockerfile = stages(read('deploy/images/Dockerfile'));
const stage = (name: string): Stage => {
  const found = dockerfile.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name} in deploy/images/Dockerfile`);
  return found;
};
/** A stage's instructions including those it inherits from the stages it is built FROM. */
const inherited = (name: string): string[] => {
  const s = stage(name);
  const parent = dockerfile.stages.some((p) => p.name === s.from) ? inherited(s.from) : [];
  return [...parent, ...s.lines];
};
const values = read('deploy/helm/sage/values.yaml');

describe('deploy/images/Dockerfile', () => {
  it('takes its bases as build arguments', () => {
    expect(dockerfile.args).toEqual(expect.arrayContaining([expect.stringMatching(/^ARG BASE=/)]));
    expect(stage('build').from).toBe('${BUILD_BASE}');
    expect(stage('runtime').from).toBe('${BASE}');
  });

  it.each(['relay', 'order-service', 'payment-service'])(
    '%s: non-root, SIGTERM, exec-form HEALTHCHECK and CMD, no entrypoint',
    (target) => {
      const lines = inherited(target);
      const last = (keyword: string) => lines.filter((l) => l.startsWith(`${keyword} `)).pop();
      expect(last('USER')).toBe('USER 10001:10001');
      expect(last('STOPSIGNAL')).toBe('STOPSIGNAL SIGTERM');
      expect(last('ENTRYPOINT')).toBe('ENTRYPOINT []');
      expect(last('HEALTHCHECK')).toMatch(/ CMD \["node", "\/app\/healthcheck\.js"\]$/);
      expect(last('CMD')).toMatch(/^CMD \[/);
      expect(lines).toContain('ENV NODE_ENV=production HOME=/tmp HOST=0.0.0.0');
    },
  );

  it('exposes the ports the chart probes', () => {
    const exposed = (target: string) =>
      inherited(target)
        .filter((l) => l.startsWith('EXPOSE '))
        .pop();
    expect(values).toMatch(/repository: sage\/relay\n/);
    expect(values).toMatch(/healthPort: 9464\n/);
    expect(exposed('relay')).toBe('EXPOSE 9464');
    expect(inherited('relay')).toContain('ENV HEALTH_PORT=9464');
    for (const [target, port] of [
      ['order-service', 3000],
      ['payment-service', 3001],
    ] as const) {
      expect(values).toMatch(
        new RegExp(
          `${target}:\\n(?:    .*\\n)*?      repository: sage/${target}\\n(?:.*\\n)*?    port: ${port}\\n`,
        ),
      );
      expect(exposed(target)).toBe(`EXPOSE ${port}`);
      expect(inherited(target)).toContain(`ENV PORT=${port}`);
    }
  });

  it('starts the services from the files the apps build emits', () => {
    const tsconfig = read('deploy/images/tsconfig.apps.json');
    for (const target of ['order-service', 'payment-service']) {
      const cmd = stage(target).lines.find((l) => l.startsWith('CMD '));
      expect(cmd).toBe(`CMD ["node", "dist/apps/${target}/src/main.js"]`);
      expect(tsconfig).toContain(`"../../apps/${target}/src/main.ts"`);
      expect(() => read(`apps/${target}/src/main.ts`)).not.toThrow();
    }
  });

  it('keeps for runtime only dev dependencies the root package declares', () => {
    const pkg = JSON.parse(read('package.json')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const names = [
      ...read('deploy/images/runtime-deps.js').matchAll(/^ {2}'?([@\w/.-]+)'?: '/gm),
    ].map((m) => m[1]!);
    expect(names).toEqual(expect.arrayContaining(['ajv', 'ajv-formats', 'class-validator']));
    for (const name of names) {
      expect(pkg.dependencies[name] ?? pkg.devDependencies[name]).toBeDefined();
    }
  });

  it('sends the build only what it compiles', () => {
    const ignore = read('deploy/images/Dockerfile.dockerignore');
    expect(ignore.split('\n')).toEqual(
      expect.arrayContaining(['**', '**/node_modules', '**/dist', '**/*.spec.ts']),
    );
  });
});
