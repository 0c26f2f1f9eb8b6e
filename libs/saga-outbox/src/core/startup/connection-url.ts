/**
 * What may be said about a connection URL (`postgres://user:password@host:5432/db`,
 * `amqp://user:password@host:5672`): its address, never its credentials. The one place this is
 * decided, for startup messages, broker errors and the CLI.
 */

/**
 * `host:port` of `url` (default port `defaultPort`), followed by its path when `withPath` (the
 * database of a PostgreSQL URL): never the user or password. `undefined` when `url` does not parse.
 */
export function urlAddress(url: string, defaultPort: number, withPath = false): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const host = parsed.hostname || 'localhost';
  const path = withPath && parsed.pathname && parsed.pathname !== '/' ? parsed.pathname : '';
  return `${host}:${parsed.port || defaultPort}${path}`;
}

/**
 * The strings to scrub from any text before it is shown: the whole URL and its `:password@`
 * always, the bare password (raw and decoded) when long enough not to be an ordinary word of the
 * message too (a dev password "sage" would mangle every schema name).
 */
export function urlSecrets(url: string, extraPassword?: string): string[] {
  const secrets = [url];
  const passwords = new Set<string>();
  try {
    const parsed = new URL(url);
    if (parsed.password) {
      secrets.push(`:${parsed.password}@`);
      passwords.add(parsed.password).add(safeDecode(parsed.password));
    }
  } catch {
    // An unparseable URL is scrubbed whole; its password cannot be told apart.
  }
  if (extraPassword) passwords.add(extraPassword);
  for (const p of passwords) if (p.length >= 8) secrets.push(p);
  return secrets;
}

/** `text` with every secret replaced by `***`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  return secrets.reduce((t, s) => (s ? t.split(s).join('***') : t), text);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
