/** The Online Security Code Card API (S2, S3): make (a POST), print or save, confirm; activation is /devices/{id}/activation. */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Services } from '../../services.js';
import { ErrorSchema } from '../errors.js';
import { printedTime, sendCardFile } from '../downloads.js';
import type { SessionGuard } from '../session-guard.js';
import type { Device } from '../../devices/types.js';
import type { CodeCardSecret } from '../../devices/code-card/code-card.js';

const OnlineCardSchema = z
  .object({
    deviceId: z.string(),
    serial: z.string().nullable(),
    state: z.string(),
    printConfirmed: z.boolean(),
    codes: z.array(z.string()).describe('codes[i] is the code under index number i + 1'),
  })
  .describe('OnlineCard');
const errors = { 401: ErrorSchema, 403: ErrorSchema };
/** The card's files and its confirmation need the card made first (POST /online-card). */
const madeErrors = { ...errors, 409: ErrorSchema };

export function onlineCardApi(services: Services, guard: SessionGuard): FastifyPluginAsync {
  async function sessionOf(request: FastifyRequest) {
    return (await guard.require(request, 'temporary')).session;
  }

  async function view(device: Device) {
    const secret = (await services.devices.context(device)).secret<CodeCardSecret>();
    return {
      deviceId: device.id,
      serial: device.serial,
      state: device.state,
      printConfirmed: typeof device.params.printConfirmedAt === 'number',
      codes: secret.codes,
    };
  }

  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();
    const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];
    const tags = ['online security card'];

    app.post(
      '/online-card',
      {
        schema: {
          operationId: 'getOnlineCard',
          tags,
          summary: 'The online security card to print: made on the first call, the same until activated (S2)',
          description: 'For a session opened with a temporary passcode. Activate it afterwards through /devices/{deviceId}/activation.',
          security,
          response: { 200: OnlineCardSchema, ...errors },
        },
      },
      async (request, reply) => {
        reply.header('cache-control', 'no-store');
        return view(await services.onlineCards.make(await sessionOf(request)));
      },
    );

    app.post(
      '/online-card/printed',
      {
        schema: {
          operationId: 'confirmOnlineCardPrinted',
          tags,
          summary: 'Confirm the card printed correctly, in all its parts (S2)',
          description: '409 ONLINE_CARD_NOT_MADE before the card was made (POST /online-card).',
          security,
          response: { 200: OnlineCardSchema, ...madeErrors },
        },
      },
      async (request, reply) => {
        reply.header('cache-control', 'no-store');
        return view(await services.onlineCards.confirmPrinted(await sessionOf(request)));
      },
    );

    for (const format of ['pdf', 'png'] as const) {
      app.get(
        `/online-card/card.${format}`,
        {
          schema: {
            operationId: format === 'pdf' ? 'getOnlineCardPdf' : 'getOnlineCardPng',
            tags,
            summary: format === 'pdf' ? 'The card as a PDF, to print' : 'The card as a PNG image, to save',
            description: 'Only the card already made (POST /online-card): a GET never makes one. 409 ONLINE_CARD_NOT_MADE otherwise.',
            security,
            response: {
              // a file, not JSON: its media type in the document (I2)
              200: {
                description: format === 'pdf' ? 'The card as a PDF' : 'The card as a PNG image',
                content: { [format === 'pdf' ? 'application/pdf' : 'image/png']: { schema: z.any() } },
              },
              ...madeErrors,
            },
          },
        },
        async (request, reply) => {
          const session = await sessionOf(request);
          const body =
            format === 'pdf'
              ? await services.onlineCards.pdf(session, request.language, printedTime)
              : await services.onlineCards.png(session, request.language, printedTime);
          return sendCardFile(reply, format, body);
        },
      );
    }
  };
}
