/**
 * TLS and credentials of a NATS connection: the adapter's options checked once and turned into the
 * client's connect options. Secrets (password, token, seed, creds) never appear in an error.
 */
import { readFileSync } from 'node:fs';
import { InvalidOptionsError } from '../../core/errors';
import {
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type ConnectSecurity,
} from './nats-client';
import type { NatsSecurityOptions, NatsTlsOptions } from './nats-security-options';

const TLS_KEYS = ['ca', 'caFile', 'cert', 'certFile', 'key', 'keyFile', 'handshakeFirst'];

/**
 * The client's connect options for `options`: `tls` and `user`/`pass`/`token`/`authenticator`.
 * `tlsScheme`: a server URL was `tls://` (TLS required). InvalidOptionsError (naming `nats.<field>`)
 * on a bad combination, before anything is opened.
 */
export function natsConnectSecurity(
  options: NatsSecurityOptions,
  tlsScheme = false,
): ConnectSecurity {
  const out: ConnectSecurity = {};
  const tls = options.tls;
  if (tls !== undefined) {
    if (tls !== true && (typeof tls !== 'object' || tls === null))
      throw new InvalidOptionsError(
        'nats.tls',
        'must be true or an object { ca, cert, key } (or caFile, certFile, keyFile)',
      );
    const t: NatsTlsOptions = tls === true ? {} : tls;
    for (const key of Object.keys(t))
      if (!TLS_KEYS.includes(key))
        throw new InvalidOptionsError(
          `nats.tls.${key}`,
          `unknown option; known: ${TLS_KEYS.join(', ')}`,
        );
    for (const [inline, file] of [
      ['ca', 'caFile'],
      ['cert', 'certFile'],
      ['key', 'keyFile'],
    ] as const) {
      if (t[inline] !== undefined && t[file] !== undefined)
        throw new InvalidOptionsError(`nats.tls.${inline}`, `give ${inline} or ${file}, not both`);
      const value = t[inline];
      if (value !== undefined && typeof value !== 'string' && !Buffer.isBuffer(value))
        throw new InvalidOptionsError(`nats.tls.${inline}`, 'must be a PEM string or a Buffer');
      const path = t[file];
      if (path !== undefined && (typeof path !== 'string' || !path))
        throw new InvalidOptionsError(`nats.tls.${file}`, 'must be a file path');
    }
    if ((t.cert ?? t.certFile) !== undefined && (t.key ?? t.keyFile) === undefined)
      throw new InvalidOptionsError(
        'nats.tls.key',
        'a client certificate needs its private key (key or keyFile)',
      );
    if ((t.key ?? t.keyFile) !== undefined && (t.cert ?? t.certFile) === undefined)
      throw new InvalidOptionsError(
        'nats.tls.cert',
        'a private key needs its client certificate (cert or certFile)',
      );
    out.tls = {
      ...(t.ca !== undefined ? { ca: t.ca.toString() } : {}),
      ...(t.caFile !== undefined ? { caFile: t.caFile } : {}),
      ...(t.cert !== undefined ? { cert: t.cert.toString() } : {}),
      ...(t.certFile !== undefined ? { certFile: t.certFile } : {}),
      ...(t.key !== undefined ? { key: t.key.toString() } : {}),
      ...(t.keyFile !== undefined ? { keyFile: t.keyFile } : {}),
      ...(t.handshakeFirst === true ? { handshakeFirst: true } : {}),
    };
  } else if (tlsScheme) {
    out.tls = {};
  }

  const ways = [
    options.user !== undefined || options.password !== undefined ? 'user/password' : undefined,
    options.token !== undefined ? 'token' : undefined,
    options.nkeySeed !== undefined ? 'nkeySeed' : undefined,
    options.credsFile !== undefined ? 'credsFile' : undefined,
  ].filter((w): w is string => w !== undefined);
  if (ways.length > 1)
    throw new InvalidOptionsError(
      'nats',
      `give one way of authenticating, not ${ways.join(' and ')}`,
    );
  const secret = (name: string, value: unknown): void => {
    if (typeof value === 'function') return;
    if (typeof value !== 'string' || !value)
      throw new InvalidOptionsError(
        `nats.${name}`,
        'must be a non-empty string or a function returning one (the value is not shown)',
      );
  };
  if (ways[0] === 'user/password') {
    if (typeof options.user !== 'string' || !options.user)
      throw new InvalidOptionsError(
        'nats.user',
        'is required with nats.password and must be a non-empty string',
      );
    if (options.password === undefined)
      throw new InvalidOptionsError('nats.password', `is required with nats.user`);
    secret('password', options.password);
    // A function is called at each (re)connect: a rotated password is picked up without a restart.
    out.authenticator = usernamePasswordAuthenticator(options.user, options.password);
  } else if (ways[0] === 'token') {
    secret('token', options.token);
    out.authenticator = tokenAuthenticator(options.token as string | (() => string));
  } else if (ways[0] === 'nkeySeed') {
    const seed = options.nkeySeed;
    if (typeof seed !== 'string' || !/^SU[A-Z2-7]{50,}$/.test(seed.trim()))
      throw new InvalidOptionsError(
        'nats.nkeySeed',
        'must be a user NKEY seed (starts with "SU"); the value is not shown',
      );
    out.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed.trim()));
  } else if (ways[0] === 'credsFile') {
    const file = options.credsFile;
    if (typeof file !== 'string' || !file)
      throw new InvalidOptionsError('nats.credsFile', 'must be the path of a .creds file');
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- reviewed: a path from the deployment's own configuration (a mounted secret), never from a message or request
      readFileSync(file);
    } catch (error) {
      throw new InvalidOptionsError(
        'nats.credsFile',
        `cannot read "${file}": ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    // Read at each (re)connect: a rotated file is picked up without a restart.
    out.authenticator = credsAuthenticator(
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- reviewed: a path from the deployment's own configuration (a mounted secret), never from a message or request
      () => readFileSync(file),
    );
  }
  return out;
}

/**
 * `servers` with credentials (`nats://user:pass@host`) refused: they would be sent over whatever
 * the connection is and shown wherever the URL is; the options carry them instead. Also tells
 * whether any server is `tls://` (TLS required), and gives the list back as `host:port` URLs.
 */
export function natsServers(servers: readonly string[]): { servers: string[]; tls: boolean } {
  let tls = false;
  const out = servers.map((server) => {
    const scheme = /^([a-z]+):\/\//i.exec(server)?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== 'nats' && scheme !== 'tls')
      throw new InvalidOptionsError(
        'nats.servers',
        `unsupported scheme "${scheme}://"; use nats:// or tls://`,
      );
    const rest = scheme === undefined ? server : server.slice(scheme.length + 3);
    if (rest.split(/[/?#]/)[0]!.includes('@'))
      throw new InvalidOptionsError(
        'nats.servers',
        'a server URL must not hold credentials (user:password@ or token@); give them as the nats.user / nats.password, nats.token, nats.nkeySeed or nats.credsFile options (the URL is not shown)',
      );
    if (scheme === 'tls') tls = true;
    return scheme === 'tls' ? `nats://${rest}` : server;
  });
  return { servers: out, tls };
}
