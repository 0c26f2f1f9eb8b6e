import { withTlsHint } from './tls-failure-hint';

const names = { ca: 'tls.ca', cert: 'tls.cert and tls.key', enable: 'amqp://' };

describe('withTlsHint', () => {
  it.each([
    ['self-signed certificate in certificate chain', 'set tls.ca to the CA that signed it'],
    ['unable to verify the first certificate', 'set tls.ca'],
    ['certificate has expired', 'outside its validity period'],
    ["Hostname/IP does not match certificate's altnames", 'servername'],
    [
      '80CCABD4657F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n',
      'set tls.cert and tls.key',
    ],
    ['wrong version number', 'does not speak TLS on this port'],
  ])('%s → hint %s', (text, hint) => {
    expect(withTlsHint(text, names)).toContain(hint);
  });

  it('cuts an OpenSSL line to its reason, and leaves other texts alone', () => {
    expect(
      withTlsHint(
        '80CC:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:x.c:1601:SSL alert number 116\n',
        names,
      ),
    ).toMatch(/^tlsv13 alert certificate required \(the server refused/);
    expect(withTlsHint('connect ECONNREFUSED 127.0.0.1:5671', names)).toBe(
      'connect ECONNREFUSED 127.0.0.1:5671',
    );
  });
});
