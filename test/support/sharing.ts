/** H: the parties of a device sharing, as the sharing tests and attacks start from. */
import type { CardFile } from '../../src/devices/devices.js';
import type { User } from '../../src/identity/users.js';
import { indexAnswerOf, loginSession } from './api.js';
import { REQUESTER_SCC_CODES, createSharingRequester, createUserWithCard, type Harness } from './harness.js';

/**
 * The owner (a DSC+, primary user) and a requester of the same entity with a
 * Security Code Card: in the owner's account (granted the right, A2), or in
 * an account of their own; the requester's session stepped up (V1).
 */
export async function sharingPair(
  h: Harness,
  where: 'same-account' | 'other-account' = 'same-account',
): Promise<{ owner: User; card: CardFile; requester: User; sccId: string; headers: Record<string, string> }> {
  const owner = await createUserWithCard(h.services, '1234');
  const { requester, sccId } = await createSharingRequester(h.services, owner.user, where);
  const headers = await loginSession(h.app, requester.username, indexAnswerOf(REQUESTER_SCC_CODES), { stepUp: true });
  return { owner: owner.user, card: owner.card, requester, sccId, headers };
}
