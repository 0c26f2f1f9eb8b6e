/**
 * The security options of the NATS adapter (public types). Kept apart from nats-security.ts, whose
 * functions use the client's own types: those live behind the @nats-io packages' "exports" and must
 * not reach the published declaration files.
 */
/** TLS to the NATS server; PEM texts (or Buffers) or file paths, as the server was set up. */
export interface NatsTlsOptions {
  /** CA certificate(s) the server's certificate must chain to. Default: the system CAs. */
  ca?: string | Buffer;
  /** Or a file holding them. */
  caFile?: string;
  /** Client certificate, for a server that verifies clients (`verify: true`). */
  cert?: string | Buffer;
  certFile?: string;
  /** The client certificate's private key. */
  key?: string | Buffer;
  keyFile?: string;
  /** TLS before the NATS INFO (server `handshake_first: true`). Default false. */
  handshakeFirst?: boolean;
}

/** The security part of NatsJetStreamBrokerOptions. At most one way of authenticating. */
export interface NatsSecurityOptions {
  /**
   * TLS: `true` (the system CAs), or the CA / client certificate. Default: TLS when the server
   * requires or offers it, verified against the system CAs; a `tls://` server URL requires it.
   */
  tls?: true | NatsTlsOptions;
  /** User name (server `authorization { users }`); with `password`. */
  user?: string;
  /** Password of `user`: a string, or a function called at every (re)connect (rotation). */
  password?: string | (() => string);
  /** Token (server `authorization { token }`): a string or a function called at every (re)connect. */
  token?: string | (() => string);
  /** NKEY seed (`SU…`) of a user the server lists by its public key. */
  nkeySeed?: string;
  /** Path of a `.creds` file (decentralised JWT auth: user JWT + NKEY seed), read at every (re)connect. */
  credsFile?: string;
}
