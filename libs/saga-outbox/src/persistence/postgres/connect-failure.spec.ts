import { connectFailureReason, permanentConnectFix } from './connect-failure';

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('connect failures', () => {
  it.each([
    ['28P01', 'postgres.url', 'Check the user name and password in postgres.url.'],
    [
      '28P01',
      'postgres.host',
      'Check the user name and password in postgres.user and postgres.password.',
    ],
    ['3D000', 'postgres.host', 'Create the database, or fix its name in postgres.database.'],
    ['3D000', 'dataSource', 'Create the database, or fix its name in dataSource.'],
    [
      '28000',
      'postgres.url',
      "Check the user name in postgres.url, and that the server's pg_hba.conf lets it connect from this host.",
    ],
  ])('SQLSTATE %s under %s is permanent: %s', (code, option, fix) => {
    expect(permanentConnectFix(pgError(code, 'x'), option)).toBe(fix);
  });

  it('refused, timed out, restarting (57P03) are transient', () => {
    expect(
      permanentConnectFix(pgError('ECONNREFUSED', 'connect ECONNREFUSED'), 'postgres.url'),
    ).toBeUndefined();
    expect(
      permanentConnectFix(pgError('57P03', 'the database system is starting up'), 'postgres.url'),
    ).toBeUndefined();
    expect(permanentConnectFix(new Error('timeout'), 'postgres.url')).toBeUndefined();
  });

  it('the reason carries the SQLSTATE, the causes, and every address of a multi-address failure', () => {
    expect(connectFailureReason(pgError('3D000', 'database "x" does not exist'))).toBe(
      'database "x" does not exist (SQLSTATE 3D000)',
    );
    expect(connectFailureReason(pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'))).toBe(
      'connect ECONNREFUSED 127.0.0.1:1',
    );
    const aggregate = Object.assign(
      new AggregateError([
        new Error('connect ECONNREFUSED ::1:1'),
        new Error('connect ECONNREFUSED 127.0.0.1:1'),
      ]),
      { code: 'ECONNREFUSED' },
    );
    expect(connectFailureReason(aggregate)).toBe(
      'connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(
      connectFailureReason(
        new Error('Connection terminated', { cause: new Error('read ECONNRESET') }),
      ),
    ).toBe('Connection terminated: read ECONNRESET');
  });
});
