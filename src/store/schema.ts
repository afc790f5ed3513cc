/**
 * Table types for Kysely. Times are Unix milliseconds (bigint), booleans are
 * 0/1 integers and structured values are JSON text, so that the same rows
 * work on SQLite and PostgreSQL.
 */
import type { Generated } from 'kysely';

export interface MetaTable {
  key: string;
  value: string;
}

export interface EntitiesTable {
  id: string;
  kind: 'individual' | 'organization';
  name: string;
  /** Sealed JSON of the identification data (A1). */
  identification_enc: string | null;
  /** Keyed digest of the normalised identification data, to compare entities (H1a). */
  identification_digest: string | null;
  created_at: number;
}

export interface AccountsTable {
  id: string;
  account_number: string;
  entity_id: string;
  equity_usd_cents: Generated<number>;
  primary_user_id: string | null;
  created_at: number;
}

export interface UsersTable {
  id: string;
  username: string;
  entity_id: string;
  account_id: string;
  password_hash: string;
  password_changed_at: number;
  email: string | null;
  /** A2: may change the security settings of the account. */
  can_change_security: Generated<number>;
  status: Generated<'active' | 'disabled'>;
  /** L6: the device offered first at the next login. */
  last_device_id: string | null;
  created_at: number;
  role: Generated<Role>;
  /** A5: set by a one-time password from client services; cleared when the user chooses a new one. */
  password_must_change: Generated<number>;
  /** A5: when a one-time password stops working (24 hours after it was set); null for a password the user chose. */
  password_expires_at: number | null;
  /** A5: when a one-time password opened its one session; it opens no other. */
  password_used_at: number | null;
  /** N1: the language of the user's notices (en, fr, zh-Hant); null: the server's default. */
  language: string | null;
  /** N1: the IANA time zone of times in the user's notices; null: SLS_TIME_ZONE. */
  time_zone: string | null;
  /**
   * N1: when the language and time zone above were chosen (settings page,
   * `sls user set-language`); null while they are remembered from the
   * user's logins, which then keep them up to date.
   */
  notice_preferences_chosen_at: number | null;
}

/** Who a user is to the system: a client, or staff (section 0 of the spec). */
export type Role = 'client' | 'client_services' | 'compliance' | 'admin';

export type DeviceState = 'stock' | 'requested' | 'shipped' | 'active' | 'suspended' | 'lost' | 'returned' | 'revoked';

export interface DevicesTable {
  id: string;
  user_id: string | null;
  type: string;
  state: DeviceState;
  serial: string | null;
  label: string | null;
  /** Sealed device secret (D5), bound to the device id. */
  secret_enc: string | null;
  /** Non-secret parameters as JSON (suite, batch …). */
  params: Generated<string>;
  created_at: number;
  state_changed_at: number;
  activated_at: number | null;
  last_used_at: number | null;
  /** When a temporary device (temporary passcode, online card) stops working. */
  expires_at: number | null;
  /** The device's own counter (code cards' challenge sequence, S4). */
  counter: Generated<number>;
  /** D6: a security key's WebAuthn credential id, unique across users (decision 0014); null for other devices. */
  credential_id: string | null;
}

/**
 * `approved`: the phone approved a push request; the login page has yet to
 * take its session (K3). `denied`: the phone said "this wasn't me" (K13).
 */
export type FlowState = 'second_factor' | 'approved' | 'done' | 'failed' | 'denied';

/** How the user confirmed on the phone (K12: biometric grants longer trading sessions). */
export type Confirmation = 'pin' | 'biometric';

/** What a flow is for (LoginFlowsTable.kind). */
export type FlowKind = 'login' | 'activation' | 'pin_change' | 'mobile_activation' | 'step_up' | 'sharing';

export interface LoginFlowsTable {
  id: string;
  /**
   * A login, the proof of a device to activate it (D4, S2, C6) or change its
   * PIN (C7), the activation of the mobile authenticator (K1, K7, K8), or a
   * step-up verification of a portal task (V1).
   */
  kind: FlowKind;
  app: 'portal' | 'trading';
  username: string;
  user_id: string;
  state: FlowState;
  device_id: string | null;
  /** What the client must show, as JSON (the challenge question, index numbers …). */
  prompt: string | null;
  /** What the server needs to check the answer, sealed to the flow (never shown). */
  verifier: string | null;
  attempts: Generated<number>;
  device_switches: Generated<number>;
  expires_at: number;
  created_at: number;
  updated_at: number;
  ip: string | null;
  user_agent: string | null;
  session_id: string | null;
  confirmed_by: Confirmation | null;
  /**
   * K3: a keyed digest of the secret given only to whoever started the login
   * (the password's holder); an approved login's session is theirs alone.
   */
  claim_hash: string | null;
  /** L4, decision 0018: the client the flow was started from (`clientOf`: an IPv4 address, an IPv6 /64). */
  client: string | null;
  /** L4, decisions 0018, 0024: the allowance the flow counts in: 1 a client the user had completed a login from, 2 a signed-in session's proof (a step-up, a device's activation or PIN change), 0 other. */
  recognised: Generated<number>;
}

export interface SessionsTable {
  id: string;
  token_hash: string;
  user_id: string;
  app: 'portal' | 'trading';
  flow_id: string | null;
  device_id: string | null;
  device_type: string | null;
  created_at: number;
  last_seen_at: number;
  idle_expires_at: number | null;
  expires_at: number;
  revoked_at: number | null;
  ip: string | null;
  user_agent: string | null;
  scope: Generated<SessionScope>;
  confirmed_by: Confirmation | null;
  /** V1: when the user last verified again with a device (step-up), for portal tasks. */
  verified_at: number | null;
}

/** T3: what a session may do. */
export type SessionScope = 'full' | 'online_card_only';

export interface IdentityVerificationsTable {
  id: string;
  user_id: string;
  staff_user_id: string;
  /** How client services verified the caller (T1, A5). */
  method: string;
  notes: string | null;
  created_at: number;
  expires_at: number;
}

export interface NotificationsTable {
  id: string;
  user_id: string | null;
  channel: 'email' | 'sms' | 'voice';
  recipient: string;
  template: string;
  language: string;
  subject: string | null;
  body: string;
  /**
   * `pending`: waiting (a notice for the outbox worker at next_attempt_at; a
   * code while it is handed to the gateway inline); `sending`: claimed by a
   * worker until lease_until; `sent`; `failed` for good.
   */
  status: NotificationStatus;
  provider: string;
  /** Makes a notice exactly-once (N1), whichever process sends it. */
  dedupe_key: string | null;
  /** The last delivery error (status codes only, never the message or a credential). */
  error: string | null;
  created_at: number;
  sent_at: number | null;
  /** X6: delivery attempts so far. */
  attempts: Generated<number>;
  /** X6: when the outbox worker may try (again); null for inline messages (codes) and finished ones. */
  next_attempt_at: number | null;
  /** X6: a worker holds the message until then (renewed while it delivers); then another may take it. */
  lease_until: number | null;
  /** X6: the claim that holds the message (one per attempt), so a late worker never records over another's. */
  claim: string | null;
  /** M7, decisions 0018, 0024: the allowance of the send limits the code counts in: 1 a recognised client's login, 2 a signed-in session's proof, 0 other. */
  recognised: Generated<number>;
  /**
   * M7, D5: a code delivered by the development outbox: its text with the
   * code, sealed (bound to the message's id), while `body` has it masked.
   * Kept until sealed_until (when the code expires), then removed.
   */
  sealed_body: string | null;
  sealed_until: number | null;
}

export type NotificationStatus = 'pending' | 'sending' | 'sent' | 'failed';

export interface LoginFailuresTable {
  id: string;
  username: string;
  at: number;
  /** `pending` while the attempt is being checked; it counts as a failure until cleared. */
  state: 'pending' | 'failed';
}

export interface LockoutsTable {
  username: string;
  locked_until: number | null;
  /** Failures before this time no longer count (a successful login or an unlock). */
  reset_at: Generated<number>;
}

export interface UsedCodesTable {
  device_id: string;
  digest: string;
  expires_at: number;
}

export interface AuditLogTable {
  seq: number;
  at: number;
  event: string;
  actor: string | null;
  user_id: string | null;
  username: string | null;
  ip: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

/** X1: the signed head of the audit chain (one row, id 1). */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
  at: number;
  /** Entries up to this seq were chained with plain SHA-256 before the keyed chain (decision 0006). */
  legacy_until: number;
  /** Null only between migration 0009 and the first start that signs it. */
  signature: string | null;
}

export interface DepositHoldsTable {
  id: string;
  account_id: string;
  device_id: string;
  amount_cents: number;
  currency: string;
  /** C5: held until the card comes back; kept if it is lost, stolen or not returned. */
  status: 'held' | 'released' | 'kept';
  reason: string | null;
  created_at: number;
  resolved_at: number | null;
}

/** M1, M6: a mobile number of a user, in E.164; verified by a confirm code sent to it. */
export interface PhonesTable {
  id: string;
  user_id: string;
  /** ISO 3166 alpha-2, as chosen by the user (M6). */
  country: string;
  e164: string;
  verified_at: number | null;
  created_at: number;
  /** Keyed digest of the confirm code in flight (never the code). */
  confirm_digest: string | null;
  confirm_expires_at: number | null;
  confirm_attempts: Generated<number>;
  /** When the last confirm code was sent: a new one waits (M1). */
  confirm_sent_at: number | null;
}

/** K14: a message sealed to a phone's agreement key, until the app has shown it. */
export interface AppMessagesTable {
  id: string;
  device_id: string;
  kind: 'temporary_password';
  /** JSON of the sealed message (only the phone can open it). */
  sealed: string;
  created_at: number;
  expires_at: number;
}

export interface PushSubscriptionsTable {
  device_id: string;
  /** The push subscription (endpoint and the app's keys), sealed (D5). */
  subscription_enc: string;
  created_at: number;
}

/** X5: hits of a throttle key in one fixed window. */
export interface RateCountersTable {
  key: string;
  window_start: number;
  hits: number;
}

/** I3: an integrator's API key; the secret is kept as a keyed digest only. */
export interface ApiKeysTable {
  id: string;
  name: string;
  secret_digest: string;
  /** JSON array of scopes (withdrawals, accounts). */
  scopes: string;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
  last_used_at: number | null;
}

/** W3: an exchange rate supplied by the operator: USD per unit of the currency, a decimal as text. */
export interface FxRatesTable {
  currency: string;
  usd_per_unit: string;
  updated_at: number;
  updated_by: string;
}

/** W3: an accepted withdrawal, counted in its account's windows. */
export interface WithdrawalsTable {
  id: string;
  account_id: string;
  /** The integrator's reference: a withdrawal is recorded once per account and reference. */
  reference: string;
  /** The amount in hundredths of the currency. */
  amount_minor: number;
  currency: string;
  /** The rate it was converted with. */
  usd_per_unit: string;
  usd_cents: number;
  /** The device type that set the limit (W1), or `none`. */
  device: string;
  /** The user whose device set the limit. */
  user_id: string | null;
  api_key_id: string | null;
  at: number;
}

/** H1-H5: a request to share the owner's device with the requester, and the sharing once in force. */
export type SharingState = 'challenge' | 'review' | 'pending' | 'active' | 'rejected' | 'cancelled' | 'expired';

export interface DeviceSharingsTable {
  id: string;
  requester_id: string;
  owner_id: string;
  device_id: string;
  state: SharingState;
  flow_id: string | null;
  session_id: string | null;
  /** H5: what becomes of the requester's redundant devices. */
  disposition: 'keep' | 'return' | null;
  /** H3: approved at once, or by compliance staff. */
  approval: 'automatic' | 'compliance' | null;
  /** JSON array of the requester's device ids suspended while sharing. */
  kept_devices: string;
  created_at: number;
  updated_at: number;
  decided_at: number | null;
  decided_by: string | null;
  note: string | null;
  ended_at: number | null;
  ended_by: string | null;
}

/** O1: a user who opted out of the second factor for trading logins (the row goes when they opt back in, O2). */
export interface OptOutsTable {
  user_id: string;
  opted_out_at: number;
  /** Who opted the user out: `user:<id>` (the portal or the API), `cli`. */
  actor: string;
}

/** I1: an artefact of the OpenID Provider (its model's payload as JSON). */
export interface OidcArtifactsTable {
  model: string;
  id: string;
  payload: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: number | null;
  consumed_at: number | null;
}

/** I1: a signing key of the provider, sealed; retired keys stay published until their tokens expire. */
export interface OidcKeysTable {
  kid: string;
  sealed_jwk: string;
  created_at: number;
  retired_at: number | null;
}

/** I1: a relying party; its secret only as a keyed digest (null for a public client). */
export interface OidcClientsTable {
  client_id: string;
  name: string;
  app: 'portal' | 'trading';
  secret_digest: string | null;
  /** JSON arrays of URLs. */
  redirect_uris: string;
  post_logout_redirect_uris: string;
  backchannel_logout_uri: string | null;
  /** 1: may use the device authorization grant (RFC 8628). */
  device_grant: number;
  created_at: number;
  created_by: string;
}

/** I1, L8: a provider session standing on one of our sessions; its clients are told when ours ends. */
export interface OidcSessionLinksTable {
  oidc_session_uid: string;
  sls_session_id: string;
  user_id: string;
  created_at: number;
  logged_out_at: number | null;
  attempts: number;
  next_attempt_at: number;
  /** L8: a new login in the same browser replaced our session (that login's session id): the provider session goes on. */
  replaced_by: string | null;
  /** RFC 8628: linked only for the devices' grants carried over to this session (L8); the provider session does not stand on it. */
  devices_only: Generated<number>;
}

/** I1, L8: under which of our sessions a grant of a provider session was given, and the sid its client was told. */
export interface OidcGrantSessionsTable {
  grant_id: string;
  client_id: string;
  sid: string;
  oidc_session_uid: string;
  sls_session_id: string;
  created_at: number;
  /** RFC 8628: given to a device (its code approved), not to the browser: a new login of the same user there carries it over (L8). */
  device_code: Generated<number>;
}

/** T5, A5: a secret of the console on its way to the page that shows it once (bound to the staff session and the user). */
export interface HelpdeskHandoversTable {
  id: string;
  session_id: string;
  user_id: string;
  kind: string;
  expires_at: number;
}

export interface Schema {
  meta: MetaTable;
  entities: EntitiesTable;
  accounts: AccountsTable;
  users: UsersTable;
  devices: DevicesTable;
  login_flows: LoginFlowsTable;
  sessions: SessionsTable;
  login_failures: LoginFailuresTable;
  lockouts: LockoutsTable;
  used_codes: UsedCodesTable;
  audit_log: AuditLogTable;
  audit_head: AuditHeadTable;
  identity_verifications: IdentityVerificationsTable;
  notifications: NotificationsTable;
  deposit_holds: DepositHoldsTable;
  phones: PhonesTable;
  app_messages: AppMessagesTable;
  push_subscriptions: PushSubscriptionsTable;
  rate_counters: RateCountersTable;
  api_keys: ApiKeysTable;
  fx_rates: FxRatesTable;
  withdrawals: WithdrawalsTable;
  device_sharings: DeviceSharingsTable;
  opt_outs: OptOutsTable;
  oidc_artifacts: OidcArtifactsTable;
  oidc_keys: OidcKeysTable;
  oidc_clients: OidcClientsTable;
  oidc_session_links: OidcSessionLinksTable;
  oidc_grant_sessions: OidcGrantSessionsTable;
  helpdesk_handovers: HelpdeskHandoversTable;
}
