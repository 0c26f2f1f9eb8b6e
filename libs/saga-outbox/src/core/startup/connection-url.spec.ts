import { scrubSecrets, urlAddress, urlSecrets } from './connection-url';

describe('connection URLs in messages', () => {
  it('urlAddress: host and port (and the database when asked), never the credentials', () => {
    expect(urlAddress('postgres://sage:s3cret-pw@db.internal:6543/orders', 5432, true)).toBe(
      'db.internal:6543/orders',
    );
    expect(urlAddress('postgres://sage:s3cret-pw@db.internal/orders', 5432)).toBe(
      'db.internal:5432',
    );
    expect(urlAddress('amqp://u:p@127.0.0.1', 5672)).toBe('127.0.0.1:5672');
    expect(urlAddress('postgres://sage:pw@host:notaport/db', 5432)).toBeUndefined();
  });

  it('urlSecrets + scrubSecrets: the URL, its :password@ and a long enough password are masked', () => {
    const url = 'postgres://sage:s3cret-pw@db:5432/orders';
    const secrets = urlSecrets(url);
    expect(scrubSecrets(`failed for ${url}: password s3cret-pw rejected`, secrets)).toBe(
      'failed for ***: password *** rejected',
    );
    // A short password is not masked as a bare word (it would mangle ordinary text)...
    expect(scrubSecrets('schema sage', urlSecrets('postgres://sage:sage@db/sage'))).toBe(
      'schema sage',
    );
    // ...but its :password@ form is.
    expect(scrubSecrets('postgres://x:sage@db', urlSecrets('postgres://sage:sage@db/sage'))).toBe(
      'postgres://x***db',
    );
    expect(
      scrubSecrets('p%40ss-word-long in text', urlSecrets('postgres://u:p%40ss-word-long@h/d')),
    ).toBe('*** in text');
  });
});
