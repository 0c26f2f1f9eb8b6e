import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { SagaService } from '@sage/saga-outbox';
import { RefundSaga, type RefundInput } from './refund.saga';

/**
 * No try/catch for Sage's errors: SageHttpExceptionFilter (PaymentServiceModule) answers a refund
 * the validator rejects with 400 and an unknown saga id with 404.
 */
@Controller('refunds')
export class RefundsController {
  constructor(private readonly sagas: SagaService) {}

  /** Starts a refund; the refund id is the idempotency key, so a retried request starts nothing new. */
  @Post()
  @HttpCode(202)
  refund(@Body() body: RefundInput) {
    // By class: `body` must be a RefundInput, the input RefundSaga's steps take.
    return this.sagas.start(RefundSaga, body, { idempotencyKey: String(body?.refundId) });
  }

  @Get('sagas/:sagaId')
  status(@Param('sagaId') sagaId: string) {
    return this.sagas.get(sagaId);
  }
}
