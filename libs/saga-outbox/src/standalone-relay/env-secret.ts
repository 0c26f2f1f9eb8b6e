/**
 * A secret from the environment: `NAME`, or `NAME_FILE` naming a mounted secret file (Docker and
 * Kubernetes secrets), whose trailing newline is dropped. Errors name the variable, never the value.
 */
import { readFileSync } from 'node:fs';
import { InvalidOptionsError } from '../core/errors';

/** `env[name]`, or the content of the file `env[name_FILE]`; undefined when neither is set (or blank). */
export function envSecret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = envFilePath(env, name);
  if (file === undefined) {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.replace(/\r?\n$/, '');
  }
  return readSecretFile(file, `${name}_FILE`);
}

/**
 * Like envSecret, but with `NAME_FILE` a function reading the file each time it is called (a
 * rotated secret is picked up without a restart); checked once now.
 */
export function envRotatingSecret(
  env: NodeJS.ProcessEnv,
  name: string,
): string | (() => string) | undefined {
  const file = envFilePath(env, name);
  if (file === undefined) return envSecret(env, name);
  readSecretFile(file, `${name}_FILE`);
  return () => readSecretFile(file, `${name}_FILE`);
}

/** `env[name_FILE]` (trimmed) when set; InvalidOptionsError when `name` is set too. */
function envFilePath(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}_FILE`]?.trim();
  if (!file) return undefined;
  if (env[name]?.trim())
    throw new InvalidOptionsError(name, `and ${name}_FILE are both set; set one of them`);
  return file;
}

function readSecretFile(path: string, variable: string): string {
  let text: string;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- reviewed: a path from the deployment's own configuration (a mounted secret), never from a message or request
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidOptionsError(
      variable,
      `cannot read the file "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'}); mount the secret there or fix the path`,
    );
  }
  const value = text.replace(/\r?\n$/, '');
  if (!value.trim()) throw new InvalidOptionsError(variable, `the file "${path}" is empty`);
  return value;
}
