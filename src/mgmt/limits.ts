/**
 * Limits and defaults of MGMT (the dashboard), in one place; units last.
 */
export const MGMT_DEFAULT_PORT = 8080;
export const MGMT_DEFAULT_HOST = '127.0.0.1';

export const MGMT_LIMITS = Object.freeze({
  /** One call to the MDM gives up after this long (the page shows "MDM unreachable"). */
  mdmCallTimeoutMs: 10_000,
  /** How often each live stream (SSE) asks the MDM for new IO figures and health. */
  statsPollMs: 2000,
  /** Live streams served at once (each polls the MDM). */
  sseClientsMax: 64,
  /** Largest request body (login form, volume forms). */
  requestBodyBytesMax: 64 * 1024,
  /** Upper bound of a session; it also ends when the MDM token in it expires. */
  sessionTtlMsMax: 12 * 3600_000,
  /** Longest user name and password accepted by the login form. */
  credentialLengthMax: 256,
});

export const SESSION_COOKIE = 'pflex_session';
