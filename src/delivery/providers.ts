/**
 * The delivery providers the configuration asks for (M7, N1): real gateways
 * wrapped in retries, the development outbox for every channel left.
 */
import type { DeliveryConfig } from '../config.js';
import { outboxProvider, type DeliveryProvider } from '../notify/notifier.js';
import { withRetry } from './retry.js';
import { smtpProvider } from './smtp.js';
import { twilioProvider } from './twilio.js';

export function deliveryProviders(config: DeliveryConfig, dataDir: string): DeliveryProvider[] {
  const providers: DeliveryProvider[] = [];
  if (config.email.provider === 'smtp') {
    const { provider: _name, ...smtp } = config.email;
    providers.push(withRetry(smtpProvider(smtp), config.retry));
  }
  if (config.sms.provider === 'twilio') {
    const { provider: _name, ...twilio } = config.sms;
    providers.push(withRetry(twilioProvider(twilio), config.retry));
  }
  providers.push(outboxProvider(dataDir));
  return providers;
}
