import 'reflect-metadata';
import { Controller, Get, Module, Res, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Logger, LoggerModule } from 'nestjs-pino';
import { Writable } from 'node:stream';
import { sagePinoParams } from './sage-logging';

/** A Nest app logging the way the samples do (sagePinoParams), its pino lines kept in memory. */
async function appLoggingTo(
  lines: string[],
  redact?: string[],
): Promise<[INestApplication, string]> {
  @Controller()
  class SessionController {
    @Get('session')
    session(@Res({ passthrough: true }) res: { setHeader(name: string, value: string): void }) {
      res.setHeader('set-cookie', 'sid=response-cookie-secret; HttpOnly');
      return { ok: true };
    }
  }
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  @Module({
    imports: [
      LoggerModule.forRoot(
        sagePinoParams({ service: 'redaction-test', level: 'info', destination, redact }),
      ),
    ],
    controllers: [SessionController],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  await app.listen(0, '127.0.0.1');
  return [app, (await app.getUrl()).replace('[::1]', '127.0.0.1')];
}

describe('sagePinoParams: request logs without credentials', () => {
  const secrets = {
    authorization: 'Bearer authorization-secret',
    'proxy-authorization': 'Basic proxy-authorization-secret',
    cookie: 'sid=request-cookie-secret',
    'x-api-key': 'api-key-secret',
    'x-session': 'configured-path-secret',
  };

  it('writes one line per request, with the credential headers and configured paths redacted on both sides', async () => {
    const lines: string[] = [];
    const [app, url] = await appLoggingTo(lines, ['req.headers["x-session"]']);
    try {
      const res = await fetch(`${url}/session`, { headers: secrets });
      expect(res.status).toBe(200);
      expect(res.headers.get('set-cookie')).toContain('response-cookie-secret');
      await fetch(`${url}/health/ready`, { headers: secrets }); // probes: not request-logged
      await app.close();
    } finally {
      await app.close().catch(() => undefined);
    }
    const output = lines.join('\n');
    for (const secret of [...Object.values(secrets), 'response-cookie-secret'])
      expect(output).not.toContain(secret.split(' ').pop()!.split('=').pop()!);
    const requestLines = lines
      .map((l) => JSON.parse(l) as Record<string, any>) // eslint-disable-line @typescript-eslint/no-explicit-any -- pino's JSON lines
      .filter((l) => l['req'] !== undefined);
    expect(requestLines).toHaveLength(1);
    const [line] = requestLines;
    expect(line).toMatchObject({
      service: 'redaction-test',
      msg: 'request completed',
      req: { method: 'GET', url: '/session' },
      res: { statusCode: 200 },
    });
    for (const name of ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-session'])
      expect(line!['req']['headers'][name]).toBe('[redacted]');
    expect(line!['res']['headers']['set-cookie']).toBe('[redacted]');
  });
});
