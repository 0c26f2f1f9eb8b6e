import { serveSample } from '../../shared/serve-sample';
import { PaymentServiceModule } from './payment-service.module';

void serveSample('payment-service', 3001, (databaseUrl) =>
  PaymentServiceModule.register({ databaseUrl }),
);
