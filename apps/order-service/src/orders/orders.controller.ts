import {
  BadRequestException,
  Body,
  ConflictException,
  Controller,
  Get,
  Headers,
  HttpCode,
  NotFoundException,
  Param,
  Post,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import {
  NotSerializableError,
  SagaIdempotencyConflictError,
  SagaInputInvalidError,
  SagaNotFoundError,
  SagaService,
} from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { PlaceOrderInput } from './order.types';

@Controller('orders')
export class OrdersController {
  constructor(
    private readonly sagas: SagaService,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** Starts the order-placement saga. `Idempotency-Key` makes retries of this request safe. */
  @Post()
  @HttpCode(202)
  async place(
    @Body() body: Omit<PlaceOrderInput, 'orderId'>,
    @Headers('idempotency-key') key?: string,
  ) {
    const orderId = `ord-${key ?? randomUUID()}`;
    try {
      const { sagaId, created } = await this.sagas.start<PlaceOrderInput>(
        'order-placement',
        { ...body, orderId },
        { idempotencyKey: orderId },
      );
      return { orderId, sagaId, created };
    } catch (error) {
      // Invalid input, or input that cannot be stored (too deep, NUL, not plain JSON): the client's to fix.
      if (error instanceof SagaInputInvalidError || error instanceof NotSerializableError)
        throw new BadRequestException(error.message);
      // The same Idempotency-Key with another body: a different request under a used key.
      if (error instanceof SagaIdempotencyConflictError) throw new ConflictException(error.message);
      throw error;
    }
  }

  @Get(':id')
  async get(@Param('id') id: string) {
    const rows: { saga_id: string | null; status: string }[] = await this.db.query(
      `SELECT id, customer, sku, quantity, amount_cents, status, saga_id FROM orders.customer_order WHERE id = $1`,
      [id],
    );
    const order = rows[0];
    if (!order?.saga_id) throw new NotFoundException(`order ${id} not found`);
    try {
      const saga = await this.sagas.get(order.saga_id);
      return { order, saga };
    } catch (error) {
      if (error instanceof SagaNotFoundError) throw new NotFoundException(error.message);
      throw error;
    }
  }
}
