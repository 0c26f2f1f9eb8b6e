import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  UseGuards,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { SagaService } from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { SampleApiKeyGuard } from '../../../shared/api-key.guard';
import { IdempotencyKey } from '../../../shared/sample-validation';
import { ORDER_PLACEMENT_SAGA, type OrderPlacementSagaClass } from './order-placement.saga';
import { PlaceOrderDto } from './place-order.dto';

/**
 * The body is a PlaceOrderDto, checked by the ValidationPipe (400 for unknown fields, wrong types,
 * values out of bounds), the Idempotency-Key header by the IdempotencyKey decorator (400 when too long or
 * outside its alphabet). Sage's errors need no try/catch here: SageHttpExceptionFilter (registered
 * in OrderServiceModule) answers an input the saga's validator rejects with 400, an
 * Idempotency-Key reused with another body with 409 (the saga stores a fingerprint of its input),
 * an unknown saga id with 404. SampleApiKeyGuard marks where authentication goes.
 */
@Controller('orders')
@UseGuards(SampleApiKeyGuard)
export class OrdersController {
  constructor(
    private readonly sagas: SagaService,
    @Inject(ORDER_PLACEMENT_SAGA) private readonly orderPlacement: OrderPlacementSagaClass,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** Starts the order-placement saga. `Idempotency-Key` makes retries of this request safe. */
  @Post()
  @HttpCode(202)
  async place(@Body() body: PlaceOrderDto, @IdempotencyKey() key?: string) {
    const orderId = `ord-${key ?? randomUUID()}`;
    // Started by class: the input is checked against the steps' PlaceOrderInput at compile time.
    // The order id is the saga's idempotency key: the same key with another body is a 409.
    const { sagaId, created } = await this.sagas.start(
      this.orderPlacement,
      { ...body, orderId },
      { idempotencyKey: orderId },
    );
    return { orderId, sagaId, created };
  }

  @Get(':id')
  async get(@Param('id') id: string) {
    const rows: { saga_id: string | null; status: string }[] = await this.db.query(
      `SELECT id, customer, sku, quantity, amount_cents, status, saga_id FROM orders.customer_order WHERE id = $1`,
      [id],
    );
    const order = rows[0];
    if (!order?.saga_id) throw new NotFoundException(`order ${id} not found`);
    return { order, saga: await this.sagas.get(order.saga_id) };
  }
}
