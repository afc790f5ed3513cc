/**
 * Entities (A1): the individual or organisation behind one or more
 * usernames, in one account or across several. An entity carries
 * identification data — date of birth, citizenship, country of legal
 * residence, an identification document's type and number, or the SSN of a
 * US citizen or resident — validated here, sealed at rest under the master
 * key (bound to the entity's id), shown masked, and compared by a keyed
 * digest of its canonical form: two users are of the same identity when they
 * belong to the same entity or to entities with identical identification
 * data (H1a, "Different identification information" otherwise).
 *
 * Client services correct identification data (an outdated document on
 * record, the seed's remedy for a mismatch) only with the document they saw
 * and its reference; every correction, and every unmasked view, is audited,
 * naming the fields, never their values.
 */
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { newId } from '../crypto/random.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { SlsError } from '../errors.js';
import type { Executor, Store, Tx } from '../store/database.js';
import { isCountryCode } from './countries.js';

export type EntityKind = 'individual' | 'organization';
export const ENTITY_KINDS: readonly EntityKind[] = ['individual', 'organization'];

/** The identification documents of each kind of entity. */
export const DOCUMENT_TYPES: Record<EntityKind, readonly string[]> = {
  individual: ['passport', 'national_id', 'drivers_license', 'residence_permit'],
  organization: ['company_registration', 'tax_id'],
};

/** What client services may have seen to correct identification data: a document of either kind, a proof of address, an SSN card. */
export const BASIS_DOCUMENTS: readonly string[] = [...DOCUMENT_TYPES.individual, ...DOCUMENT_TYPES.organization, 'proof_of_address', 'ssn_card'];

export interface Identification {
  /** YYYY-MM-DD. */
  dateOfBirth?: string;
  /** ISO 3166-1 alpha-2. */
  citizenship?: string;
  /** ISO 3166-1 alpha-2: the country of legal residence (of registration, for an organisation). */
  residenceCountry?: string;
  documentType?: string;
  /** Upper-case letters and digits, without spaces or dashes. */
  documentNumber?: string;
  /** AAA-GG-SSSS, for US citizens and residents. */
  ssn?: string;
}

export const IDENTIFICATION_FIELDS = ['dateOfBirth', 'citizenship', 'residenceCountry', 'documentType', 'documentNumber', 'ssn'] as const;
export type IdentificationField = (typeof IDENTIFICATION_FIELDS)[number];

export interface Entity {
  id: string;
  kind: EntityKind;
  name: string;
  createdAt: number;
  identification: Identification;
}

/** Identification data as staff and the command line see it by default. */
export interface MaskedIdentification {
  /** The year only: 1980-**-**. */
  dateOfBirth: string | null;
  citizenship: string | null;
  residenceCountry: string | null;
  documentType: string | null;
  /** The last 4 characters: ****1234. */
  documentNumber: string | null;
  /** ***-**-6789. */
  ssn: string | null;
}

export interface EntityView {
  id: string;
  kind: EntityKind;
  name: string;
  createdAt: number;
  identification: MaskedIdentification | Identification;
  masked: boolean;
  /** The entity's accounts and usernames (A1). */
  accounts: { accountNumber: string; usernames: string[] }[];
}

export interface EntityInput {
  kind: string;
  name: string;
  identification: Partial<Record<IdentificationField, string | undefined>>;
}

/** What client services saw before correcting identification data: the document's type and a reference (its number, a ticket). */
export interface CorrectionBasis {
  document: string;
  reference: string;
}

const invalid = (field: string, reason: string): SlsError => new SlsError('IDENTIFICATION_INVALID', { field, reason });

/** A name of people or of a company: 1 to 200 characters, no control characters. */
function assertName(name: string): string {
  const clean = name.trim().replace(/\s+/g, ' ');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused on purpose
  if (clean.length === 0 || clean.length > 200 || /[\u0000-\u001f\u007f]/.test(clean)) throw invalid('name', 'name');
  return clean;
}

export function assertEntityKind(kind: string): EntityKind {
  const k = kind === 'organisation' ? 'organization' : kind;
  if (!(ENTITY_KINDS as readonly string[]).includes(k)) throw invalid('kind', 'kind');
  return k as EntityKind;
}

function country(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  const code = value.toUpperCase();
  if (!/^[A-Z]{2}$/.test(code) || !isCountryCode(code)) throw invalid(field, 'country');
  return code;
}

/** A calendar date (YYYY-MM-DD) from 1900 to today. */
function birthDate(value: string | undefined, today: number): string | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) throw invalid('dateOfBirth', 'date');
  const [y, m, d] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const at = Date.UTC(y, m - 1, d);
  const date = new Date(at);
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d || y < 1900) throw invalid('dateOfBirth', 'date');
  if (at > today) throw invalid('dateOfBirth', 'date_future');
  return value;
}

/** A US Social Security Number: 9 digits (dashes and spaces allowed), never area 000, 666 or 9xx, group 00 or serial 0000. */
function ssnOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const digits = value.replace(/[\s-]/g, '');
  if (!/^\d{9}$/.test(digits)) throw invalid('ssn', 'ssn');
  const [area, group, serial] = [digits.slice(0, 3), digits.slice(3, 5), digits.slice(5)];
  if (area === '000' || area === '666' || area.startsWith('9') || group === '00' || serial === '0000') throw invalid('ssn', 'ssn');
  return `${area}-${group}-${serial}`;
}

function documentNumberOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const clean = value.toUpperCase().replace(/[\s-]/g, '');
  if (!/^[A-Z0-9]{4,30}$/.test(clean)) throw invalid('documentNumber', 'document_number');
  return clean;
}

/**
 * A1: the identification data of an entity of that kind, checked and in its
 * canonical form. An individual gives the date of birth, citizenship and
 * country of legal residence, then the SSN if a US citizen or resident, an
 * identification document otherwise; an organisation gives its country of
 * registration and a registration document.
 */
export function validateIdentification(kind: EntityKind, raw: EntityInput['identification'], today: number): Identification {
  const value = (field: IdentificationField): string | undefined => {
    const v = raw[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.length > 64) throw invalid(field, 'too_long');
    const trimmed = v.trim();
    return trimmed === '' ? undefined : trimmed;
  };
  const id: Identification = {};
  const dateOfBirth = birthDate(value('dateOfBirth'), today);
  const citizenship = country(value('citizenship'), 'citizenship');
  const residenceCountry = country(value('residenceCountry'), 'residenceCountry');
  const documentType = value('documentType');
  const documentNumber = documentNumberOf(value('documentNumber'));
  const ssn = ssnOf(value('ssn'));
  if (documentType !== undefined && !DOCUMENT_TYPES[kind].includes(documentType)) throw invalid('documentType', `document_type_${kind}`);
  if ((documentType === undefined) !== (documentNumber === undefined))
    throw invalid(documentType === undefined ? 'documentType' : 'documentNumber', 'document');
  if (!residenceCountry) throw invalid('residenceCountry', 'required');
  if (kind === 'individual') {
    if (!dateOfBirth) throw invalid('dateOfBirth', 'required');
    if (!citizenship) throw invalid('citizenship', 'required');
    const usPerson = citizenship === 'US' || residenceCountry === 'US';
    if (ssn && !usPerson) throw invalid('ssn', 'ssn_not_us');
    if (usPerson && !ssn) throw invalid('ssn', 'ssn_required');
    if (!usPerson && !documentType) throw invalid('documentType', 'document_required');
  } else {
    if (ssn) throw invalid('ssn', 'ssn_individual');
    if (!documentType) throw invalid('documentType', 'document_required');
  }
  if (dateOfBirth) id.dateOfBirth = dateOfBirth;
  if (citizenship) id.citizenship = citizenship;
  id.residenceCountry = residenceCountry;
  if (documentType && documentNumber) {
    id.documentType = documentType;
    id.documentNumber = documentNumber;
  }
  if (ssn) id.ssn = ssn;
  return id;
}

/** The canonical text of identification data whose keyed digest compares entities (H1a). */
export function normalizedIdentification(id: Identification): string {
  const clean = (v: string | undefined): string => (v ?? '').trim().toUpperCase().replace(/\s+/g, ' ');
  return IDENTIFICATION_FIELDS.map((field) => clean(id[field])).join('|');
}

/** Whether identification data is there at all (users created without any carry none, and match nobody). */
export function hasIdentification(id: Identification): boolean {
  return IDENTIFICATION_FIELDS.some((field) => (id[field] ?? '').trim() !== '');
}

export function maskIdentification(id: Identification): MaskedIdentification {
  const last4 = (v: string | undefined) => (v === undefined ? null : `****${v.slice(-4)}`);
  return {
    dateOfBirth: id.dateOfBirth === undefined ? null : `${id.dateOfBirth.slice(0, 4)}-**-**`,
    citizenship: id.citizenship ?? null,
    residenceCountry: id.residenceCountry ?? null,
    documentType: id.documentType ?? null,
    documentNumber: last4(id.documentNumber),
    ssn: id.ssn === undefined ? null : `***-**-${id.ssn.slice(-4)}`,
  };
}

/** The sealing context of an entity's identification data: bound to its id. */
export const identificationContext = (entityId: string): string => `entity:${entityId}`;
const DIGEST_PURPOSE = 'identification';

export class Entities {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly audit: AuditLog,
  ) {}

  /** The sealed form and digest of identification data, as stored; no digest for none (it matches nobody). */
  sealed(entityId: string, identification: Identification): { identification_enc: string; identification_digest: string | null } {
    return {
      identification_enc: this.box.sealJson(identification, identificationContext(entityId)),
      identification_digest: hasIdentification(identification) ? this.box.digest(normalizedIdentification(identification), DIGEST_PURPOSE) : null,
    };
  }

  /** A1: a new entity with its identification data (validated, sealed). Audited without the data. */
  async create(input: EntityInput, actor: string): Promise<Entity> {
    const kind = assertEntityKind(input.kind);
    const name = assertName(input.name);
    const identification = validateIdentification(kind, input.identification, this.clock.now());
    const id = newId('ent');
    const now = this.clock.now();
    await this.store.serialized('audit_log', async (trx) => {
      await trx
        .insertInto('entities')
        .values({ id, kind, name, ...this.sealed(id, identification), created_at: now })
        .execute();
      await this.audit.append(trx, [{ event: 'entity.created', actor, data: { entityId: id, kind, fields: presentFields(identification) } }]);
    });
    return { id, kind, name, createdAt: now, identification };
  }

  async find(db: Executor, entityId: string): Promise<Entity | null> {
    if (!/^[A-Za-z0-9_]{1,64}$/.test(entityId)) return null;
    const row = await db.selectFrom('entities').selectAll().where('id', '=', entityId).executeTakeFirst();
    if (!row) return null;
    const identification = row.identification_enc ? this.box.openJson<Identification>(row.identification_enc, identificationContext(row.id)) : {};
    return { id: row.id, kind: row.kind, name: row.name, createdAt: row.created_at, identification };
  }

  async get(entityId: string): Promise<Entity> {
    const entity = await this.find(this.store.db, entityId);
    if (!entity) throw new SlsError('ENTITY_NOT_FOUND', { entity: entityId });
    return entity;
  }

  /** The entity of a user. */
  async ofUser(userId: string): Promise<Entity> {
    const row = await this.store.db.selectFrom('users').select('entity_id').where('id', '=', userId).executeTakeFirst();
    if (!row) throw new SlsError('USER_NOT_FOUND', { id: userId });
    return this.get(row.entity_id);
  }

  /** The usernames of the entity, by account (A1: several usernames, in one account or across several). */
  async holdings(entityId: string): Promise<{ accountNumber: string; usernames: string[] }[]> {
    const accounts = await this.store.db
      .selectFrom('accounts')
      .select(['id', 'account_number'])
      .where('entity_id', '=', entityId)
      .orderBy('account_number')
      .execute();
    const users = await this.store.db.selectFrom('users').select(['username', 'account_id']).where('entity_id', '=', entityId).orderBy('username').execute();
    return accounts.map((a) => ({ accountNumber: a.account_number, usernames: users.filter((u) => u.account_id === a.id).map((u) => u.username) }));
  }

  /** The entity as people see it: masked unless `reveal` (then the caller audits who saw it). */
  async view(entityId: string, reveal = false): Promise<EntityView> {
    const entity = await this.get(entityId);
    return {
      id: entity.id,
      kind: entity.kind,
      name: entity.name,
      createdAt: entity.createdAt,
      identification: reveal ? entity.identification : maskIdentification(entity.identification),
      masked: !reveal,
      accounts: await this.holdings(entity.id),
    };
  }

  /**
   * Client services correct identification data (and the name), based on a
   * document they saw: its type and a reference are required and audited
   * with the names of the fields changed. Empty fields of `changes` are left
   * as they are; the whole is validated again and resealed.
   */
  async correct(
    entityId: string,
    changes: { name?: string; identification: EntityInput['identification'] },
    basis: CorrectionBasis,
    actor: string,
    alongside?: (trx: Tx, entity: Entity) => Promise<void>,
  ): Promise<{ entity: Entity; fields: string[] }> {
    const document = basis.document.trim();
    const reference = basis.reference.trim();
    if (!BASIS_DOCUMENTS.includes(document)) throw invalid('basisDocument', 'basis_document');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused on purpose
    if (reference.length === 0 || reference.length > 100 || /[\u0000-\u001f\u007f]/.test(reference)) throw invalid('basisReference', 'basis_reference');
    const entity = await this.get(entityId);
    const given = Object.fromEntries(
      IDENTIFICATION_FIELDS.map((field) => [field, changes.identification[field]?.trim() || undefined]).filter(([, v]) => v !== undefined),
    ) as Partial<Record<IdentificationField, string>>;
    // an SSN and a document replace each other: a US person gives the SSN, others a document
    const merged: EntityInput['identification'] = { ...entity.identification, ...given };
    if (changes.identification.ssn === '-') delete merged.ssn;
    if (changes.identification.documentType === '-') {
      delete merged.documentType;
      delete merged.documentNumber;
    }
    const identification = validateIdentification(entity.kind, merged, this.clock.now());
    const name = changes.name?.trim() ? assertName(changes.name) : entity.name;
    const fields: string[] = IDENTIFICATION_FIELDS.filter((field) => identification[field] !== entity.identification[field]);
    if (name !== entity.name) fields.unshift('name');
    if (fields.length === 0) throw invalid('identification', 'unchanged');
    const updated: Entity = { ...entity, name, identification };
    await this.store.serialized('audit_log', async (trx) => {
      await trx
        .updateTable('entities')
        .set({ name, ...this.sealed(entity.id, identification) })
        .where('id', '=', entity.id)
        .execute();
      await this.audit.append(trx, [
        { event: 'entity.identification_corrected', actor, data: { entityId: entity.id, fields, basis: { document, reference } } },
      ]);
      await alongside?.(trx, updated);
    });
    return { entity: updated, fields };
  }

  /**
   * H1a: whether two users are of the same identity: the same entity, or
   * entities with identical identification data (compared by their keyed
   * digests). Users without identification data match only their own entity.
   */
  async sameIdentity(userA: string, userB: string, db: Executor = this.store.db): Promise<boolean> {
    const rows = await db
      .selectFrom('users')
      .innerJoin('entities', 'entities.id', 'users.entity_id')
      .select(['users.id', 'users.entity_id', 'entities.identification_digest'])
      .where('users.id', 'in', [userA, userB])
      .execute();
    const a = rows.find((r) => r.id === userA);
    const b = rows.find((r) => r.id === userB);
    if (!a) throw new SlsError('USER_NOT_FOUND', { id: userA });
    if (!b) throw new SlsError('USER_NOT_FOUND', { id: userB });
    if (a.entity_id === b.entity_id) return true;
    // entities made before identification data was required carry the digest of nothing: it matches nobody
    const nothing = this.box.digest(normalizedIdentification({}), DIGEST_PURPOSE);
    const usable = (digest: string | null): digest is string => digest !== null && digest !== nothing;
    return usable(a.identification_digest) && usable(b.identification_digest) && a.identification_digest === b.identification_digest;
  }
}

function presentFields(id: Identification): string[] {
  return IDENTIFICATION_FIELDS.filter((field) => id[field] !== undefined);
}
