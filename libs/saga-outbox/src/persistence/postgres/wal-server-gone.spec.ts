import { QueryFailedError } from 'typeorm';
import { serverGoneError } from './postgres-wal-source';

const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

it.each([
  ['a fast shutdown terminating the session (57P01)', pgError('57P01')],
  ['a server shutting down refusing connections (57P03)', pgError('57P03')],
  ['a connection exception (08006)', pgError('08006')],
  ['connection refused', pgError('ECONNREFUSED')],
  ['connection reset', pgError('ECONNRESET')],
  ["node-postgres' own end of connection", new Error('Connection terminated unexpectedly')],
  [
    'the same wrapped by TypeORM',
    new QueryFailedError('UPDATE …', [], pgError('57P01', 'terminating connection')),
  ],
  ['the same as a cause', new Error('record failed', { cause: pgError('57P03') })],
])('%s: the server is going away', (_what, error) => {
  expect(serverGoneError(error)).toBe(true);
});

it.each([
  ['a unique violation (23505)', pgError('23505')],
  ['a serialization failure (40001)', pgError('40001')],
  ['a statement timeout (57014)', pgError('57014')],
  ['an error without a code', new Error('boom')],
  ['not an error', 'Connection terminated'],
])('%s: a passing failure, retried on the session', (_what, error) => {
  expect(serverGoneError(error)).toBe(false);
});
