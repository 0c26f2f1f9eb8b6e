import { Controller, Get, Param, UseGuards } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SampleApiKeyGuard } from '../../../shared/api-key.guard';
import { authorizationsOfOrder } from './authorization.sql';

@Controller('authorizations')
@UseGuards(SampleApiKeyGuard)
export class AuthorizationsController {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Every authorization (and void tombstone) recorded for an order. */
  @Get(':orderId')
  async ofOrder(@Param('orderId') orderId: string) {
    return { orderId, authorizations: await authorizationsOfOrder(this.db.manager, orderId) };
  }
}
