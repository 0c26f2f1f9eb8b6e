import { BadRequestException, Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { NotSerializableError, SagaInputInvalidError, SagaService } from '@sage/saga-outbox';
import type { RefundInput } from './refund.saga';

@Controller('refunds')
export class RefundsController {
  constructor(private readonly sagas: SagaService) {}

  /** Starts a refund; the refund id is the idempotency key, so a retried request starts nothing new. */
  @Post()
  @HttpCode(202)
  async refund(@Body() body: RefundInput) {
    try {
      return await this.sagas.start<RefundInput>('payment-refund', body, {
        idempotencyKey: String(body?.refundId),
      });
    } catch (error) {
      // Invalid input, or input that cannot be stored (too deep, NUL, not plain JSON): the client's to fix.
      if (error instanceof SagaInputInvalidError || error instanceof NotSerializableError)
        throw new BadRequestException(error.message);
      throw error;
    }
  }

  @Get('sagas/:sagaId')
  status(@Param('sagaId') sagaId: string) {
    return this.sagas.get(sagaId);
  }
}
