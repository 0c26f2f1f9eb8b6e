/**
 * The one door to the NATS core client, typed.
 *
 * The repo's tsconfig resolves modules the "node" (node10) way, which ignores package.json
 * "exports"; the @nats-io v3 packages publish their core types behind "exports"
 * (`@nats-io/nats-core/internal`), so through `@nats-io/transport-node` they resolve to nothing
 * (values missing, `NatsConnection` untyped). The declarations are reached here by file path, types
 * only (erased at runtime); the runtime values are transport-node's own re-exports of nats-core.
 */
import * as transport from '@nats-io/transport-node';
import type * as core from '@nats-io/nats-core/lib/internal_mod';

export type { MsgHdrs, NatsConnection } from '@nats-io/nats-core/lib/internal_mod';

const natsCore = transport as unknown as typeof core & {
  connect: (options: core.ConnectionOptions) => Promise<core.NatsConnection>;
};

export const connect = natsCore.connect;
export const headers = natsCore.headers;
export const nanos = natsCore.nanos;
export const InvalidArgumentError = natsCore.InvalidArgumentError;

/** The TLS and authentication part of the client's connect options. */
export type ConnectSecurity = Pick<core.ConnectionOptions, 'tls' | 'authenticator'>;

export const nkeyAuthenticator = natsCore.nkeyAuthenticator;
export const credsAuthenticator = natsCore.credsAuthenticator;
export const usernamePasswordAuthenticator = natsCore.usernamePasswordAuthenticator;
export const tokenAuthenticator = natsCore.tokenAuthenticator;
