/**
 * The delivery providers the configuration asks for (M7, N1): real gateways,
 * and the development outbox for every channel left. One attempt each: the
 * outbox worker retries notices over minutes (src/notify/outbox-worker.ts),
 * the notifier retries codes a few times at once (SLS_DELIVERY_RETRY_*).
 */
import type { DeliveryConfig } from '../config.js';
import { outboxProvider } from './outbox.js';
import type { DeliveryProvider } from './provider.js';
import { smtpProvider } from './smtp.js';
import { twilioProvider } from './twilio.js';

export function deliveryProviders(config: DeliveryConfig, dataDir: string): DeliveryProvider[] {
  const providers: DeliveryProvider[] = [];
  if (config.email.provider === 'smtp') {
    const { provider: _name, ...smtp } = config.email;
    providers.push(smtpProvider(smtp));
  }
  if (config.sms.provider === 'twilio') {
    const { provider: _name, ...twilio } = config.sms;
    providers.push(twilioProvider(twilio));
  }
  providers.push(outboxProvider(dataDir));
  return providers;
}
