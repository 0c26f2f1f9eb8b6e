/**
 * The Helm chart deploy/helm/sage: scripts/helm-check.sh (helm lint, helm template for every value
 * set, strict schema validation of every object, PrometheusRule = ops/prometheus/alerts.yml,
 * dashboard ConfigMap = ops/grafana/outbox-overview.json) passes, its validator rejects what it
 * must, and the rendered workloads keep the settings production needs. Needs helm, kubernetes-validate
 * and the CRDs, which the script builds or fetches once into /var/tmp/sage-tools (Go and python3).
 */
/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any -- rendered Kubernetes objects are untyped JSON, checked field by field */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const script = join(root, 'scripts', 'helm-check.sh');
const chart = join(root, 'deploy', 'helm', 'sage');

interface Run {
  code: number;
  stdout: string;
  output: string;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', [script, ...args], { maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, output: `${stdout}\n${stderr}` });
    });
  });
}

async function render(...args: string[]): Promise<K8sObject[]> {
  const result = await run(['json', ...args]);
  if (result.code !== 0) throw new Error(`helm template failed:\n${result.output}`);
  return JSON.parse(result.stdout) as K8sObject[];
}

const named = (objects: K8sObject[], kind: string): K8sObject[] =>
  objects.filter((o) => o.kind === kind);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sage-helm-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Validates `objects` written as a manifest (JSON is YAML). */
async function validate(objects: K8sObject[]): Promise<Run> {
  const file = join(dir, `m-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, objects.map((o) => JSON.stringify(o)).join('\n---\n'));
  return run(['validate', file]);
}

describe('Helm chart deploy/helm/sage', () => {
  // The first run builds helm and fetches the validator and CRDs (a few minutes); later ones ~10 s.
  jest.setTimeout(600_000);

  it('passes scripts/helm-check.sh: lint, every value set rendered and every object valid', async () => {
    const result = await run([]);
    expect(result.output).toContain('helm-check: ok');
    expect(result.code).toBe(0);
  });

  it('renders alerts.yml and the dashboard verbatim', async () => {
    const objects = await render();
    const [rule] = named(objects, 'PrometheusRule');
    const [dashboard] = named(objects, 'ConfigMap');
    const alertNames = [
      ...readFileSync(join(root, 'ops/prometheus/alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g),
    ].map((m) => m[1]);
    const rendered = (rule!.spec.groups as { rules: { alert: string }[] }[]).flatMap((g) =>
      g.rules.map((r) => r.alert),
    );
    expect(rendered).toEqual(alertNames);
    expect(dashboard!.data!['outbox-overview.json']).toBe(
      readFileSync(join(root, 'ops/grafana/outbox-overview.json'), 'utf8'),
    );
    expect(readFileSync(join(chart, 'files/alerts.yml'), 'utf8')).toBe(
      readFileSync(join(root, 'ops/prometheus/alerts.yml'), 'utf8'),
    );
  });

  it('rejects an unknown field, a changed alert, a bad custom resource and an unknown kind', async () => {
    const objects = await render();
    const deployment = structuredClone(named(objects, 'Deployment')[0]!);
    deployment.spec.template.spec.containers[0].livenessProbe.httpGett = { path: '/' };
    const rule = structuredClone(named(objects, 'PrometheusRule')[0]!);
    rule.spec.groups[0].rules[0].for = '1m';
    const monitor = structuredClone(named(objects, 'ServiceMonitor')[0]!);
    monitor.spec.endpoints[0].scrapeIntervall = '10s';
    const scaled = structuredClone(named(objects, 'ScaledObject')[0]!);
    delete scaled.spec.scaleTargetRef;
    const unknown = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };

    const cases: [K8sObject, RegExp][] = [
      [deployment, /Deployment\/.*httpGett/],
      [rule, /PrometheusRule\/.*spec.groups differ/],
      [monitor, /ServiceMonitor\/.*scrapeIntervall/],
      [scaled, /ScaledObject\/.*scaleTargetRef/],
      [unknown, /Widget\/w: no schema/],
    ];
    for (const [object, message] of cases) {
      const result = await validate([object]);
      expect(result.output).toMatch(message);
      expect(result.code).toBe(1);
    }
    // The unmodified objects pass, so each failure above is the change's.
    expect((await validate(objects)).code).toBe(0);
  });

  it('runs every container non-root on a read-only root, with probes, resources and spread', async () => {
    const objects = await render();
    const deployments = named(objects, 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'sage-order-service',
      'sage-payment-service',
      'sage-relay-order-service',
      'sage-relay-payment-service',
    ]);
    for (const d of [...deployments, ...named(objects, 'Job')]) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.automountServiceAccountToken).toBe(false);
      for (const c of pod.containers) {
        expect(c.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources.requests).toBeDefined();
        expect(c.resources.limits.memory).toBeDefined();
      }
    }
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      const [c] = pod.containers;
      expect(c.livenessProbe.httpGet.path).toBe('/health/live');
      expect(c.readinessProbe.httpGet.path).toBe('/health/ready');
      expect(
        pod.topologySpreadConstraints.map((t: { topologyKey: string }) => t.topologyKey),
      ).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
      const env = Object.fromEntries(c.env.map((e: { name: string }) => [e.name, e]));
      expect(env.DATABASE_URL.valueFrom.secretKeyRef.name).toBe('sage-secrets');
      expect(env.SAGE_BROKER_URL.valueFrom.secretKeyRef.key).toBe('broker-url');
    }
    const relay = deployments.find((d) => d.metadata.name === 'sage-relay-order-service')!;
    expect(relay.spec.template.spec.containers[0].command).toEqual(['sage-relay']);
    expect(relay.spec.replicas).toBeUndefined(); // KEDA owns it
  });

  it('migrates before install and upgrade, per database', async () => {
    const jobs = named(await render(), 'Job');
    expect(jobs.map((j) => j.metadata.name).sort()).toEqual([
      'sage-migrate-order-service',
      'sage-migrate-payment-service',
    ]);
    for (const job of jobs) {
      expect(job.metadata.annotations!['helm.sh/hook']).toBe('pre-install,pre-upgrade');
      expect(job.spec.template.spec.containers[0].command).toEqual(['sage', 'migrate']);
    }
  });

  it('scales relays on their outbox backlog with KEDA, an HPA, or not at all', async () => {
    const keda = await render();
    const [scaled] = named(keda, 'ScaledObject');
    expect(scaled!.spec.triggers[0].metadata.query).toBe(
      'max(outbox_pending_messages{namespace="sage", service="sage-relay-order-service"})',
    );
    expect(named(keda, 'HorizontalPodAutoscaler')).toHaveLength(0);

    const hpa = await render('--set', 'relay.autoscaling.mode=hpa');
    expect(named(hpa, 'ScaledObject')).toHaveLength(0);
    const [autoscaler] = named(hpa, 'HorizontalPodAutoscaler');
    expect(autoscaler!.spec.metrics[0].external.metric.name).toBe('outbox_pending_messages');

    const fixed = await render('--set', 'relay.autoscaling.mode=none');
    expect(named(fixed, 'ScaledObject')).toHaveLength(0);
    expect(named(fixed, 'HorizontalPodAutoscaler')).toHaveLength(0);
    expect(
      named(fixed, 'Deployment').find((d) => d.metadata.name === 'sage-relay-order-service')!.spec
        .replicas,
    ).toBe(1);

    const wrong = await run(['render', '--set', 'relay.autoscaling.mode=vpa']);
    expect(wrong.output).toContain('relay.autoscaling.mode: "vpa" is not one of none, keda, hpa');
    expect(wrong.code).not.toBe(0);
  });

  it('limits each pod to PostgreSQL, its broker and DNS, and reads an ExternalSecret when asked', async () => {
    const objects = await render(
      '-f',
      join(chart, 'values-nats.yaml'),
      '--set',
      'externalSecret.enabled=true',
    );
    const policy = named(objects, 'NetworkPolicy').find(
      (p) => p.metadata.name === 'sage-order-service',
    )!;
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.ingress).toEqual([{ ports: [{ port: 3000, protocol: 'TCP' }] }]);
    const egressPorts = policy.spec.egress.map((r: { ports: { port: number }[] }) =>
      r.ports.map((p) => p.port),
    );
    expect(egressPorts).toEqual([[5432], [4222], [53, 53]]);
    const migrate = named(objects, 'NetworkPolicy').find(
      (p) => p.metadata.name === 'sage-migrate-order-service',
    )!;
    expect(migrate.spec.ingress).toEqual([]);
    const [external] = named(objects, 'ExternalSecret');
    expect(external!.spec.target.name).toBe('sage');
    const deployment = named(objects, 'Deployment')[0]!;
    const env = deployment.spec.template.spec.containers[0].env as {
      name: string;
      valueFrom?: any;
    }[];
    expect(env.find((e) => e.name === 'DATABASE_URL')!.valueFrom.secretKeyRef.name).toBe('sage');
  });
});
