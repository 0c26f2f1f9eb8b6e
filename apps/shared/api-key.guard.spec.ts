import 'reflect-metadata';
import { Controller, Get, Module, UseGuards, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { sampleApiKey, SampleApiKeyGuard } from './api-key.guard';

@Controller('things')
@UseGuards(SampleApiKeyGuard)
class ThingsController {
  @Get()
  list() {
    return ['thing'];
  }
}

async function appWithKey(apiKey: string | undefined): Promise<[INestApplication, string]> {
  @Module({ controllers: [ThingsController], providers: [sampleApiKey(apiKey)] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  return [app, `${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/things`];
}

describe('SampleApiKeyGuard (where authentication goes in the samples)', () => {
  it('requires X-API-Key to equal the configured key: 401 without it or with another', async () => {
    const [app, url] = await appWithKey('sample-key-123');
    try {
      expect((await fetch(url)).status).toBe(401);
      const wrong = await fetch(url, { headers: { 'x-api-key': 'sample-key-124' } });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).not.toContain('sample-key');
      expect((await fetch(url, { headers: { 'x-api-key': 'sample-key-123' } })).status).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('lets every request through when no key is configured (the demo and the tests)', async () => {
    const [app, url] = await appWithKey(undefined);
    try {
      expect((await fetch(url)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
