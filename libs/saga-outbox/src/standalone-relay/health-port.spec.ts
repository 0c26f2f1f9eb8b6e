import { InvalidOptionsError } from '../core/errors';
import { readHealthPort } from './health-port';

describe('readHealthPort', () => {
  it('prefers HEALTH_PORT, then PORT; neither means no HTTP server', () => {
    expect(readHealthPort({ HEALTH_PORT: '8081', PORT: '8080' })).toBe(8081);
    expect(readHealthPort({ PORT: '8080' })).toBe(8080);
    expect(readHealthPort({ HEALTH_PORT: ' ', PORT: '0' })).toBe(0);
    expect(readHealthPort({})).toBeUndefined();
  });

  it.each([
    [{ HEALTH_PORT: 'http' }, 'HEALTH_PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ HEALTH_PORT: '-1' }, 'HEALTH_PORT'],
  ])('rejects %j naming %s', (env, name) => {
    expect(() => readHealthPort(env)).toThrow(InvalidOptionsError);
    expect(() => readHealthPort(env)).toThrow(name);
  });
});
