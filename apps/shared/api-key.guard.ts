import {
  Inject,
  Injectable,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
  type Provider,
} from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';

/** The API key the sample's business routes require; undefined turns the check off. */
export const SAMPLE_API_KEY = Symbol('SAMPLE_API_KEY');

/** Provides the key SampleApiKeyGuard compares with (`SAGE_SAMPLE_API_KEY` in main.ts). */
export const sampleApiKey = (apiKey: string | undefined): Provider => ({
  provide: SAMPLE_API_KEY,
  useValue: apiKey,
});

/**
 * WHERE AUTHENTICATION GOES. The samples show the hook, not an authentication scheme: this guard
 * (on the business controllers, `@UseGuards(SampleApiKeyGuard)`) lets a request through when no
 * key is configured (the demo and the e2e tests) and otherwise requires the `X-API-Key` header to
 * equal it (401 if not). A real service replaces it with its own: a JWT / OAuth 2 bearer check
 * (`@nestjs/passport`, or a gateway that authenticates before the service), and authorization
 * (may this caller refund this account?) in the controller or a policy guard. The health and
 * metrics endpoints carry no guard: keep them on a port or path only the platform reaches.
 * `X-API-Key` is one of the headers sagePinoParams redacts in the logs.
 */
@Injectable()
export class SampleApiKeyGuard implements CanActivate {
  constructor(@Inject(SAMPLE_API_KEY) private readonly apiKey: string | undefined) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.apiKey === undefined) return true;
    const { headers } = context
      .switchToHttp()
      .getRequest<{ headers: Record<string, string | string[] | undefined> }>();
    const given = headers['x-api-key'];
    if (typeof given === 'string' && sameSecret(given, this.apiKey)) return true;
    throw new UnauthorizedException('A valid X-API-Key header is required.');
  }
}

/** Constant-time comparison of two secrets of any length (their SHA-256 digests are compared). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
