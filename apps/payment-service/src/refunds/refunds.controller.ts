import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { SagaService } from '@sage/saga-outbox';
import { SampleApiKeyGuard } from '../../../shared/api-key.guard';
import { RefundDto } from './refund.dto';
import { RefundSaga } from './refund.saga';

/**
 * The body is a RefundDto, checked by the ValidationPipe (400 for unknown fields, wrong types, a
 * missing `refundId`). No try/catch for Sage's errors: SageHttpExceptionFilter
 * (PaymentServiceModule) answers a refund the saga's validator rejects with 400, a `refundId`
 * reused with another body with 409 and an unknown saga id with 404.
 */
@Controller('refunds')
@UseGuards(SampleApiKeyGuard)
export class RefundsController {
  constructor(private readonly sagas: SagaService) {}

  /** Starts a refund; the refund id is the idempotency key, so a retried request starts nothing new. */
  @Post()
  @HttpCode(202)
  refund(@Body() body: RefundDto) {
    // By class: `body` must be a RefundInput, the input RefundSaga's steps take.
    return this.sagas.start(RefundSaga, { ...body }, { idempotencyKey: body.refundId });
  }

  @Get('sagas/:sagaId')
  status(@Param('sagaId') sagaId: string) {
    return this.sagas.get(sagaId);
  }
}
