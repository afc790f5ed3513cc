/**
 * The delivery providers the configuration asks for (M7, N1): real gateways
 * wrapped in retries, the development outbox for every channel left.
 */
import type { DeliveryConfig } from '../config.js';
import { outboxProvider, type DeliveryProvider } from '../notify/notifier.js';
import { withRetry } from './retry.js';
import { smtpProvider } from './smtp.js';

export function deliveryProviders(config: DeliveryConfig): DeliveryProvider[] {
  const providers: DeliveryProvider[] = [];
  if (config.email.provider === 'smtp') {
    const { provider: _name, ...smtp } = config.email;
    providers.push(withRetry(smtpProvider(smtp), config.retry));
  }
  providers.push(outboxProvider);
  return providers;
}
