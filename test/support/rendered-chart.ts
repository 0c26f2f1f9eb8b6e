/**
 * The Helm chart deploy/helm/sage rendered by `bash scripts/helm-check.sh json` (helm template with
 * release name and namespace `sage`; helm and its YAML reader are built or fetched once into
 * /var/tmp/sage-tools, which needs Go and python3). Fails with the script's own message when
 * helm cannot be set up: nothing is skipped.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'helm-check.sh');

/** The release name and namespace helm-check.sh renders with. */
export const CHART_RELEASE = 'sage';

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered Kubernetes objects are untyped JSON, read field by field
  spec?: any;
}

/** `helm template` of the chart with `args` (e.g. `--set relay.autoscaling.mode=none`) as objects. */
export function renderChart(...args: string[]): Promise<RenderedObject[]> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [SCRIPT, 'json', ...args],
      { maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error)
          reject(
            new Error(
              `"bash scripts/helm-check.sh json ${args.join(' ')}" failed (helm is needed to check the runbooks against the chart):\n${stderr}`,
            ),
          );
        else resolve(JSON.parse(stdout) as RenderedObject[]);
      },
    );
  });
}
