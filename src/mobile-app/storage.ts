/**
 * The activations kept on this phone (K1, K6): one record per username in
 * IndexedDB, with the WebCrypto keys themselves. CryptoKey objects are
 * structured-cloneable, so IndexedDB stores them as they are and they stay
 * non-extractable: not even the app can read the private keys. The PIN is
 * never stored; the server holds the other halves (docs/decisions/0004).
 */
import type { AppKey, PublicJwk } from './protocol.js';

export interface Enrolment {
  username: string;
  deviceId: string;
  /** Authenticates the live connection for this user. */
  appToken: string;
  serverKey: PublicJwk;
  salt: string;
  suite: string;
  /** Approvals confirmed by fingerprint or face (WebAuthn) rather than the PIN. */
  biometric: boolean;
  /** The WebAuthn credential id (base64url) when biometric. */
  credentialId: string | null;
  /** The WebAuthn relying party the credential belongs to. */
  rpId: string | null;
  /** ECDSA P-256: signs the answers to push requests. */
  signingKey: AppKey;
  /** ECDH P-256: opens messages sealed to the phone (K14). */
  agreementKey: AppKey;
  /** HMAC key of the offline challenge/response (K4). */
  ocraKey: AppKey;
  activatedAt: string;
  /** The server said this activation no longer works here (migrated to another phone, revoked). */
  revoked: boolean;
}

const DATABASE = 'sls-authenticator';
const STORE = 'enrolments';

let opened: Promise<IDBDatabase> | null = null;

function database(): Promise<IDBDatabase> {
  opened ??= new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE, { keyPath: 'username' });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('indexedDB.open failed'));
    request.onblocked = () => reject(new Error('indexedDB.open blocked'));
  }).catch((error: unknown) => {
    opened = null;
    throw error;
  });
  return opened;
}

async function run<T>(mode: IDBTransactionMode, act: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await database();
  return new Promise<T>((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const request = act(transaction.objectStore(STORE));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error ?? request.error ?? new Error('IndexedDB transaction failed'));
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/** Every activation on this phone, by username. */
export async function listEnrolments(): Promise<Enrolment[]> {
  const all = await run<Enrolment[]>('readonly', (store) => store.getAll() as IDBRequest<Enrolment[]>);
  return all.sort((a, b) => a.username.localeCompare(b.username));
}

/** Keeps an activation; one for the same username (recovery, migration, a new activation) is replaced. */
export async function saveEnrolment(enrolment: Enrolment): Promise<void> {
  await run('readwrite', (store) => store.put(enrolment));
}

export async function deleteEnrolment(username: string): Promise<void> {
  await run('readwrite', (store) => store.delete(username));
}

/**
 * Marks the activations of these devices as no longer working here; returns
 * whether any changed. Read and written in one transaction: a new activation
 * of the same username saved meanwhile (migration, recovery) is never
 * overwritten, since only a record still holding a revoked device changes.
 */
export async function markRevoked(deviceIds: string[]): Promise<boolean> {
  if (deviceIds.length === 0) return false;
  const db = await database();
  return new Promise<boolean>((resolve, reject) => {
    let changed = false;
    const transaction = db.transaction(STORE, 'readwrite');
    const store = transaction.objectStore(STORE);
    const cursor = store.openCursor();
    cursor.onsuccess = () => {
      const at = cursor.result;
      if (!at) return;
      const enrolment = at.value as Enrolment;
      if (!enrolment.revoked && deviceIds.includes(enrolment.deviceId)) {
        at.update({ ...enrolment, revoked: true });
        changed = true;
      }
      at.continue();
    };
    transaction.oncomplete = () => resolve(changed);
    transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB transaction failed'));
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
  });
}
