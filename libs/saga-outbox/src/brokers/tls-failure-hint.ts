/** The options a TLS hint names, in the adapter's terms (`tls.ca`, `ssl.ca`, `SAGE_KAFKA_SSL_CA`…). */
export interface TlsHintNames {
  /** The CA option. */
  ca: string;
  /** The client certificate option. */
  cert: string;
  /** How to turn TLS on (`amqps://`, `ssl`). */
  enable: string;
}

/**
 * What a TLS connection failure means and which option fixes it, for a connection error's text
 * (Node's and OpenSSL's texts are exact but cryptic: "unable to get local issuer certificate").
 * Undefined when the text is not a TLS failure it knows. Never sees nor adds secrets.
 */
export function tlsFailureHint(errorText: string, names: TlsHintNames): string | undefined {
  if (
    /unable to (get local issuer|verify the first) certificate|self[- ]signed certificate|certificate signature failure/i.test(
      errorText,
    )
  )
    return `the server's certificate is not signed by a CA this client trusts: set ${names.ca} to the CA that signed it`;
  if (/certificate has expired|certificate is not yet valid/i.test(errorText))
    return "the server's certificate is outside its validity period: renew it (or check this machine's clock)";
  if (/Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID/i.test(errorText))
    return "the server's certificate is not for the host connected to: connect by a name it carries, or set servername";
  if (/certificate required|alert (bad certificate|unknown ca|handshake failure)/i.test(errorText))
    return `the server refused this client's certificate (none given, or not signed by a CA it trusts): set ${names.cert}`;
  if (/wrong version number|packet length too long|unknown protocol/i.test(errorText))
    return `the server does not speak TLS on this port: check the port, or turn TLS off (${names.enable})`;
  return undefined;
}

/**
 * `text`, followed by its hint when tlsFailureHint has one. OpenSSL's own lines
 * (`80CC…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:…`) are cut
 * to their reason (`tlsv13 alert certificate required`).
 */
export function withTlsHint(text: string, names: TlsHintNames): string {
  const openssl = /[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):[^\n]*\n?/g;
  const short = text.replace(openssl, (_line, reason: string) => reason).trim();
  const hint = tlsFailureHint(short, names);
  return hint ? `${short} (${hint})` : short;
}
