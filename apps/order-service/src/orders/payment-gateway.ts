import { Injectable } from '@nestjs/common';
import { PaymentDeclinedError } from './order.types';

export interface AuthorizeRequest {
  orderId: string;
  amountCents: number;
  card: string;
  /** Stable across retries: the gateway must treat a repeat as the same authorization. */
  idempotencyKey: string;
  signal: AbortSignal;
}

/** The card processor the order saga authorizes payments with. Replaced by payment-service calls in the distributed setup. */
export abstract class PaymentGateway {
  abstract authorize(request: AuthorizeRequest): Promise<{ authorization: string }>;
}

/** A local stand-in processor: cards ending in 0002 are declined (the usual test-card convention). */
@Injectable()
export class FakeCardGateway extends PaymentGateway {
  authorize(request: AuthorizeRequest): Promise<{ authorization: string }> {
    if (request.card.endsWith('0002'))
      return Promise.reject(new PaymentDeclinedError(request.card));
    return Promise.resolve({ authorization: `auth-${request.idempotencyKey}` });
  }
}
