import { MissingPeerDependencyError } from './core/errors';
import { loadOptionalPeer } from './optional-peer';

const notFound = (request: string): Error =>
  Object.assign(new Error(`Cannot find module '${request}'\nRequire stack:\n- /app/x.js`), {
    code: 'MODULE_NOT_FOUND',
  });

describe('loadOptionalPeer', () => {
  it('names the feature and the npm install line, in one line, when a listed package is missing', () => {
    const load = (): never => {
      throw notFound('kafkajs');
    };
    let error: unknown;
    try {
      loadOptionalPeer('broker=kafka://', ['kafkajs'], load);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MissingPeerDependencyError);
    const e = error as MissingPeerDependencyError;
    expect(e.message).toBe('broker=kafka:// needs kafkajs: npm install kafkajs');
    expect(e.message).not.toContain('\n');
    expect(e.code).toBe('PEER_DEPENDENCY_MISSING');
    expect(e.packages).toEqual(['kafkajs']);
    expect((e.cause as Error).message).toContain("'kafkajs'");
  });

  it('recognises a missing file inside a listed package', () => {
    expect(() =>
      loadOptionalPeer('nats', ['@nats-io/jetstream'], () => {
        throw notFound('@nats-io/jetstream/lib/mod');
      }),
    ).toThrow(MissingPeerDependencyError);
  });

  it('passes other errors on unchanged: another missing module, a bug in the part', () => {
    const other = notFound('left-pad');
    expect(() =>
      loadOptionalPeer('x', ['kafkajs'], () => {
        throw other;
      }),
    ).toThrow(other);
    const bug = new TypeError('boom');
    expect(() =>
      loadOptionalPeer('x', ['kafkajs'], () => {
        throw bug;
      }),
    ).toThrow(bug);
  });

  it('returns what the part exports when it loads', () => {
    expect(loadOptionalPeer('x', ['kafkajs'], () => ({ ok: 1 }))).toEqual({ ok: 1 });
  });
});
