import { permanentConnectFix } from './connect-failure';

const error = (code: string | undefined, message: string) =>
  Object.assign(new Error(message), code === undefined ? {} : { code });

describe('permanentConnectFix: TLS failures', () => {
  it.each([
    [
      error('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
      'postgres.host',
      "The server's TLS certificate is not signed by a CA Sage trusts: set postgres.ssl.ca to the CA certificate (PEM) that signed it.",
    ],
    [
      error('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      'dataSource',
      "The server's TLS certificate is not signed by a CA Sage trusts: set the DataSource's ssl option (ca) to the CA certificate (PEM) that signed it.",
    ],
    [
      error('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"),
      'postgres.url',
      "The server's TLS certificate is not for the host connected to: connect by a name it lists, or set postgres.ssl.servername to one.",
    ],
    [
      error('CERT_HAS_EXPIRED', 'certificate has expired'),
      'postgres.url',
      "The server's TLS certificate is outside its validity period: renew it on the server.",
    ],
    [
      error(
        '28000',
        'no pg_hba.conf entry for host "127.0.0.1", user "sage", database "sage", no encryption',
      ),
      'postgres.url',
      'The server accepts this client only over TLS: set postgres.ssl (e.g. { ca: <the CA certificate> }), or sslmode=verify-full in the URL.',
    ],
    [
      error(undefined, 'The server does not support SSL connections'),
      'postgres.host',
      'The server has TLS off (ssl = off): turn it on there, or remove postgres.ssl.',
    ],
  ])('%s (%s)', (e, option, fix) => {
    expect(permanentConnectFix(e, option)).toBe(fix);
  });

  it('a pg_hba refusal that is not about encryption keeps its own fix', () => {
    expect(
      permanentConnectFix(
        error(
          '28000',
          'no pg_hba.conf entry for host "10.0.0.1", user "x", database "y", SSL encryption',
        ),
        'postgres.host',
      ),
    ).toBe(
      "Check the user name in postgres.user, and that the server's pg_hba.conf lets it connect from this host.",
    );
  });
});
