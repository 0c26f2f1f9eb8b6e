import { serveSample } from '../../shared/serve-sample';
import { OrderServiceModule } from './order-service.module';

void serveSample('order-service', 3000, (databaseUrl) =>
  OrderServiceModule.register({ databaseUrl }),
);
