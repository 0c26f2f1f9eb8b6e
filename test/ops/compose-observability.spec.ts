/**
 * docker-compose.yml's `observability` profile (the three sample services, Prometheus, Grafana,
 * Jaeger) cannot be started here (no Docker engine). This checks what would break it silently: its
 * services stay out of the default `docker compose up`, every mounted file exists, each image target
 * is in deploy/images/Dockerfile, Prometheus scrapes each service on the port its image listens on
 * and loads the alert rules where they are mounted, Grafana's provider reads the directory the
 * dashboard is mounted in, and every service sends its traces to Jaeger under its own name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const root = join(__dirname, '..', '..');
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

interface Service {
  profiles?: string[];
  build?: { context: string; dockerfile: string; target: string };
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  command?: string[];
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;
const apps = ['order-service', 'payment-service', 'shipping-service'];
const profiled = ['sample-keys', ...apps, 'prometheus', 'grafana', 'jaeger'];

/** `host:container[:mode]` bind mounts of a service (named volumes left out), as [host, container]. */
const binds = (name: string): [string, string][] =>
  (services[name]?.volumes ?? [])
    .filter((v) => v.startsWith('./'))
    .map((v) => v.split(':').slice(0, 2) as [string, string]);

describe('docker-compose.yml, profile observability', () => {
  it('holds no password: Grafana reads a random one that sample-keys writes', () => {
    const grafana = services.grafana as { environment: Record<string, string> };
    expect(grafana.environment.GF_SECURITY_ADMIN_PASSWORD).toBeUndefined();
    expect(grafana.environment.GF_SECURITY_ADMIN_PASSWORD__FILE).toBe(
      '/keys/grafana-admin-password',
    );
    expect(read('docker-compose.yml')).toContain("'/keys/grafana-admin-password'");
  });

  it('adds its services under the profile only: the default `up` starts the infrastructure alone', () => {
    for (const name of profiled) expect(services[name]?.profiles).toEqual(['observability']);
    for (const name of ['postgres', 'rabbitmq', 'nats', 'kafka'])
      expect(services[name]?.profiles).toBeUndefined();
  });

  it('mounts files that exist', () => {
    const mounted = profiled.flatMap(binds);
    expect(mounted.length).toBeGreaterThanOrEqual(4);
    for (const [host] of mounted) expect(existsSync(join(root, host))).toBe(true);
  });

  it('builds each service from its deploy/images/Dockerfile target, and Prometheus scrapes it on that image`s port', () => {
    const dockerfile = read('deploy/images/Dockerfile');
    const prometheus = parse(read('ops/compose/prometheus.yml')) as {
      rule_files: string[];
      scrape_configs: { static_configs: { targets: string[] }[] }[];
    };
    const targets = prometheus.scrape_configs.flatMap((c) =>
      c.static_configs.flatMap((s) => s.targets),
    );
    for (const name of apps) {
      const service = services[name]!;
      expect(service.build).toMatchObject({ dockerfile: 'deploy/images/Dockerfile', target: name });
      const stage = dockerfile.split(/^FROM /m).find((s) => s.startsWith(`runtime AS ${name}\n`));
      expect(stage).toBeDefined();
      const port = /^ENV PORT=(\d+)$/m.exec(stage!)?.[1];
      expect(port).toBeDefined();
      expect(service.ports).toEqual([`127.0.0.1:${port}:${port}`]);
      expect(targets).toContain(`${name}:${port}`);
      expect(service.environment).toMatchObject({
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318',
        SAGE_ENCRYPTION_KEYS_FILE: '/keys/encryption-keys',
      });
    }
    expect(targets).toHaveLength(apps.length);
    // The rules Prometheus loads are the repository's alerts, where the compose file mounts them.
    expect(binds('prometheus')).toEqual(
      expect.arrayContaining([
        ['./ops/compose/prometheus.yml', '/etc/prometheus/prometheus.yml'],
        ['./ops/prometheus/alerts.yml', prometheus.rule_files[0]],
      ]),
    );
  });

  it('provisions the outbox dashboard and the Prometheus datasource in Grafana', () => {
    const provider = parse(read('ops/grafana/provisioning/dashboards/sage.yml')) as {
      providers: { options: { path: string } }[];
    };
    const dashboard = binds('grafana').find(
      ([host]) => host === './ops/grafana/outbox-overview.json',
    );
    expect(dashboard?.[1]).toBe(`${provider.providers[0]!.options.path}/outbox-overview.json`);
    expect(binds('grafana')).toContainEqual([
      './ops/grafana/provisioning',
      '/etc/grafana/provisioning',
    ]);
    const datasources = parse(read('ops/grafana/provisioning/datasources/prometheus.yml')) as {
      datasources: { type: string; url: string }[];
    };
    expect(datasources.datasources).toEqual([
      expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' }),
    ]);
  });
});
