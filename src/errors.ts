/**
 * Typed errors with stable UPPER_SNAKE codes (GUIDE lesson 5).
 *
 * Every code has an HTTP status and a translation key `errors.<CODE>` in
 * src/i18n/*.json; the text shown to people always comes from there.
 */

export const ERROR_STATUS = {
  // generic input errors (X3)
  VALIDATION_ERROR: 400,
  MALFORMED_JSON: 400,
  MALFORMED_REQUEST: 400,
  BAD_CHARACTER: 400,
  USERNAME_NOT_LOWERCASE: 400,
  WEAK_PASSWORD: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  NOT_FOUND: 404,
  // I1: the OpenID Provider's clients
  OIDC_CLIENT_NOT_FOUND: 404,
  OIDC_INTERACTION_EXPIRED: 410,
  METHOD_NOT_ALLOWED: 405,
  CSRF_FAILED: 403,
  INTERNAL_ERROR: 500,
  // login (L1-L8)
  INVALID_CREDENTIALS: 401,
  LOGIN_FAILED: 401,
  LOCKED: 423,
  FLOW_NOT_FOUND: 404,
  FLOW_EXPIRED: 410,
  FLOW_STATE: 409,
  NO_ACTIVE_DEVICE: 403,
  TEMP_PASSCODE_PORTAL_ONLY: 403,
  TEMP_PASSCODE_EXPIRED: 403,
  ONLINE_CARD_EXPIRED: 403,
  ONLINE_CARD_NOT_AVAILABLE: 403,
  SCOPE_ONLINE_CARD_ONLY: 403,
  PRINT_NOT_CONFIRMED: 409,
  ONLINE_CARD_NOT_MADE: 409,
  NOT_ELIGIBLE: 403,
  DEVICE_STATE: 409,
  NO_STOCK: 409,
  // R2, C6: a DSC+ requested under temporary access ships once staff confirmed its address with the client
  ADDRESS_NOT_CONFIRMED: 409,
  FORBIDDEN_ROLE: 403,
  IDENTITY_NOT_VERIFIED: 403,
  VERIFICATION_NOT_FOUND: 404,
  DEVICE_NOT_AVAILABLE: 409,
  UNAUTHENTICATED: 401,
  // no path without the second factor (X7, L3, L4, L8, A5, T3)
  TOO_MANY_ATTEMPTS: 429,
  TOO_MANY_REQUESTS: 429,
  TOO_MANY_FLOWS: 429,
  STEP_UP_REQUIRED: 403,
  // T3, X7: a security key added, or the second factor given up, after a step-up with a temporary passcode or online card
  PERMANENT_DEVICE_REQUIRED: 403,
  // D2, K7, X7: a new security device bound after a step-up with a device weaker than both it and the user's strongest
  STRONGER_DEVICE_REQUIRED: 403,
  PASSWORD_CHANGE_REQUIRED: 403,
  PORTAL_SESSION_REQUIRED: 403,
  STAFF_TARGET_FORBIDDEN: 403,
  // L3, decision 0020: a lock staff placed (a reported compromise, fraud) is lifted by an admin only
  STAFF_LOCK_ADMIN_ONLY: 403,
  // R2, decision 0028: the wait after a loss reported with a weaker proof is ended by an admin only, with a verification of their own
  LOSS_CONFIRM_ADMIN_ONLY: 403,
  LOSS_NOT_WAITING: 409,
  CARD_USED_UP: 409,
  // mobile numbers, SMS and voice (M1-M7)
  PHONE_INVALID: 400,
  PHONE_NOT_FOUND: 404,
  PHONE_EXISTS: 409,
  PHONE_LIMIT: 409,
  PHONE_ALREADY_VERIFIED: 409,
  PHONE_IN_USE: 409,
  KEY_IN_USE: 409,
  CODE_INVALID: 400,
  CODE_EXPIRED: 410,
  SMS_TOO_SOON: 429,
  SMS_RATE_LIMITED: 429,
  // identity and devices
  USERNAME_TAKEN: 409,
  USER_NOT_FOUND: 404,
  ACCOUNT_NOT_FOUND: 404,
  // entities, accounts and the primary user's rights (A1, A2, A6, O3)
  ENTITY_NOT_FOUND: 404,
  IDENTIFICATION_INVALID: 400,
  ACCOUNT_ENTITY_MISMATCH: 409,
  ACCOUNT_TAKEN: 409,
  NOT_PRIMARY_USER: 403,
  PRIMARY_USER_RIGHT: 409,
  // opting out of the second factor for trading and back in (O1-O3)
  OPT_OUT_NOT_CONFIRMED: 400,
  OPT_OUT_NOT_CLIENT: 409,
  DEVICE_NOT_FOUND: 404,
  SERIAL_TAKEN: 409,
  // D1: a stock device issued by its own path (the DSC+ takes its PIN), or a serial with nothing to assign
  STOCK_NOT_ASSIGNABLE: 409,
  INVALID_PIN: 400,
  // the mobile authenticator (K)
  MOBILE_ALREADY_ACTIVE: 409,
  MOBILE_NOT_ACTIVE: 409,
  RECOVERY_BLOCKED: 403,
  // issue 16 item 3: the activation token (or the device's answer) is proven before the PIN is chosen
  ACTIVATION_PROOF_FAILED: 401,
  ACTIVATION_NOT_PROVEN: 409,
  LOGIN_DENIED: 403,
  CLAIM_REFUSED: 403,
  APP_TOKEN_INVALID: 401,
  // FIDO2 security keys and passkeys (docs/decisions/0014-security-keys.md)
  SECURITY_KEY_NOT_VERIFIED: 400,
  SECURITY_KEY_NAME_INVALID: 400,
  SECURITY_KEY_MODEL_NOT_ALLOWED: 403,
  SECURITY_KEY_ALREADY_REGISTERED: 409,
  SECURITY_KEY_LIMIT: 409,
  SECURITY_KEY_REGISTRATION_EXPIRED: 410,
  // integrators' API keys and the withdrawal entitlements (I3, W1-W3; docs/entitlements.md)
  API_KEY_REQUIRED: 401,
  API_KEY_INVALID: 401,
  API_KEY_REVOKED: 401,
  API_KEY_SCOPE: 403,
  API_KEY_NOT_FOUND: 404,
  CURRENCY_UNKNOWN: 400,
  AMOUNT_INVALID: 400,
  FX_RATE_INVALID: 400,
  WITHDRAWAL_LIMIT_EXCEEDED: 409,
  WITHDRAWAL_REFERENCE_CONFLICT: 409,
  // sharing one device between usernames (H1-H5, T4)
  SHARING_DIFFERENT_IDENTIFICATION: 409,
  SHARING_TEMPORARY_DEVICE: 409,
  SHARING_LESS_SECURE_DEVICE: 409,
  // H, K6, D6: the owner has no active physical device (only an authenticator, SMS, a security key)
  SHARING_NO_PHYSICAL_DEVICE: 409,
  SHARING_SELF: 400,
  SHARING_EXISTS: 409,
  SHARING_OWNER_SHARES: 409,
  SHARING_NOT_FOUND: 404,
  SHARING_STATE: 409,
  TEMP_PASSCODE_SHARING: 409,
  INVALID_SUITE: 400,
  INVALID_PSKC: 400,
  OUTPUT_FILE_UNUSABLE: 400,
  OUTPUT_FILE_UNSAFE: 400,
  MASTER_KEY_MISMATCH: 500,
  INVALID_CONFIG: 500,
  AUDIT_CHAIN_BROKEN: 503,
  // X1: an unsigned audit head that a start does not sign (decision 0006): sls audit anchor, or a reset
  AUDIT_NOT_ANCHORED: 503,
  // running the server: outages (X6) and start failures (X4); the start failures end `sls`, never an HTTP answer
  DATABASE_UNAVAILABLE: 503,
  MIGRATIONS_PENDING: 503,
  SHUTTING_DOWN: 503,
  DATABASE_NOT_FOUND: 500,
  DATABASE_UNREACHABLE: 500,
  DATABASE_REFUSED: 500,
  DIRECTORY_MISSING: 500,
  DATABASE_FILE_UNUSABLE: 500,
  DATABASE_SCHEMA_NEWER: 500,
  PORT_IN_USE: 500,
  PORT_NOT_ALLOWED: 500,
  MASTER_KEY_MISSING: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * X2: text for people not yet in a language: a key of the translation files
 * and its values (themselves text to tell, perhaps), told in the reader's
 * language when the message is written (a schema's reason for a field).
 */
export interface Told {
  key: string;
  params?: Record<string, string | number | Told>;
}

export type ErrorParams = Record<string, string | number | string[] | Told | Told[]>;

export class SlsError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Values interpolated into the translated message, and extra fields for the API body. */
  readonly params: ErrorParams;

  constructor(code: ErrorCode, params: ErrorParams = {}, detail?: string) {
    super(detail ?? code);
    this.name = 'SlsError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.params = params;
  }
}

export function isSlsError(e: unknown): e is SlsError {
  return e instanceof SlsError;
}
