import { MissingPeerDependencyError } from './core/errors';

/**
 * Loads a part of Sage that needs optional peer packages (a broker client, PGlite, prom-client…),
 * only when it is used: `load` is a `require` of that part. If one of `packages` is not installed,
 * MissingPeerDependencyError names `feature` and the install line; any other error (a bug in the
 * part, a broken install of another package) is passed on unchanged.
 */
export function loadOptionalPeer<T>(
  feature: string,
  packages: readonly string[],
  load: () => T,
): T {
  try {
    return load();
  } catch (error) {
    if (isMissing(error, packages))
      throw new MissingPeerDependencyError(feature, packages, { cause: error });
    throw error;
  }
}

/** True when `error` is Node's "Cannot find module" for one of `packages` (or a file inside one). */
function isMissing(error: unknown, packages: readonly string[]): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (e?.code !== 'MODULE_NOT_FOUND' || typeof e.message !== 'string') return false;
  const message = e.message;
  return packages.some((name) => message.includes(`'${name}'`) || message.includes(`'${name}/`));
}
