import fastifyJwt from '@fastify/jwt';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PflexError } from '../shared/errors.js';
import { deriveKey } from '../shared/keys.js';
import { scrapeAuthChecker } from '../shared/scrape-auth.js';
import { MDM_LIMITS, resolveConfig, type MdmConfig } from './config.js';
import { openDb, type Db } from './db.js';
import { toHttpError } from './http-errors.js';
import { computePlacement } from './placement.js';
import { registerRoutes } from './routes/index.js';
import type { Claims, Role } from './services/auth.js';
import type { Clock } from './services/events.js';
import { createServices, type Services } from './services/index.js';
import type { PlaceFn } from './services/pgmap.js';
import { peerHttp, serverTlsOptions, type TlsMaterial } from '../shared/tls.js';
import { addTracingHooks } from './tracing-hooks.js';

/**
 * Who may call a route: public (no token), read (admin, monitor,
 * component), admin, component (admin and components), metrics (the
 * Prometheus scrape token, admin, monitor).
 */
export type Access = 'public' | 'read' | 'admin' | 'component' | 'metrics';

const ALLOWED: Record<Exclude<Access, 'public'>, readonly Role[]> = {
  read: ['admin', 'monitor', 'component'],
  admin: ['admin'],
  component: ['admin', 'component'],
  metrics: ['admin', 'monitor'],
};

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    /** 'failures': successful calls are not audited (heartbeats). Default: every mutation. */
    audit?: 'all' | 'failures';
  }
  interface FastifyRequest {
    pflexErrorCode?: string;
  }
  interface FastifyInstance {
    mdm: MdmHandle;
  }
}
declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: Claims;
    user: Claims;
  }
}

export type MdmApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface RouteInfo { method: string; url: string; access: Access }

export interface MdmHandle {
  services: Services;
  db: Db;
  config: MdmConfig;
  clock: Clock;
  /** Every route registered, with its access level (the auth test walks them all). */
  routes: RouteInfo[];
}

export interface BuildOptions {
  /** Path of mdm.db, or an open database (closed with the app only when given as a path). */
  db: string | Db;
  clusterKey: Buffer;
  config?: Partial<MdmConfig>;
  /** Milliseconds since the epoch; tests inject a fake one. */
  clock?: Clock;
  logger?: FastifyServerOptions['logger'];
  /** A ready pino logger (the server's); wins over `logger`. */
  loggerInstance?: FastifyBaseLogger;
  place?: PlaceFn;
  /** Serve HTTPS with this PEM key and certificate (chain), TLS 1.3; SDS control calls then go over HTTPS trusting `ca`. */
  https?: TlsMaterial;
  /** Directory of backups on the MDM host (POST /backups, scheduled backups); none: backups are off. */
  backupDir?: string;
  /** Re-evaluate component health every config.healthTickMs (the server; tests call health.tick()). */
  healthTimer?: boolean;
  /** Export prom-client's process metrics on /metrics (the server: once per process). */
  processMetrics?: boolean;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Bearer tokens already verified, by their Authorization header: a
 * component sends the same token with every beat, and the signature check
 * (with @fastify/jwt's per-call option merging) was a large part of a
 * heartbeat's cost. An entry lives until the token expires, at most
 * `verifiedTokenCacheMs`; the map is bounded (oldest entries go first).
 * Only the signature is cached: a user token's account is still checked per request.
 */
class VerifiedTokens {
  private readonly byHeader = new Map<string, { claims: Claims; untilMs: number }>();

  get(header: string): { claims: Claims; untilMs: number } | undefined {
    return this.byHeader.get(header);
  }

  remember(header: string, claims: Claims & { exp?: number }): void {
    const untilMs = Math.min(Date.now() + MDM_LIMITS.verifiedTokenCacheMs, typeof claims.exp === 'number' ? claims.exp * 1000 : 0);
    if (untilMs <= Date.now()) return;
    this.byHeader.delete(header);
    if (this.byHeader.size >= MDM_LIMITS.verifiedTokenCacheEntriesMax) {
      const oldest = this.byHeader.keys().next();
      if (!oldest.done) this.byHeader.delete(oldest.value);
    }
    this.byHeader.set(header, { claims, untilMs });
  }
}

/** Creates the MDM app without listening (tests use app.inject, `pflex mdm start` listens). */
export async function build(opts: BuildOptions): Promise<MdmApp> {
  const config = resolveConfig(opts.config);
  const clock = opts.clock ?? Date.now;
  const db = typeof opts.db === 'string' ? openDb(opts.db, { exclusive: true }) : opts.db;
  const serverOptions: FastifyServerOptions = {
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    bodyLimit: config.requestBodyBytesMax,
    // Heartbeats would flood the info log; one debug line per request instead (below).
    logController: new Fastify.LogController({ disableRequestLogging: true }),
    // Unknown body fields are refused (400), not silently dropped: a typo must not pass.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  };
  // With TLS the raw server is an https.Server; routes and hooks do not care, so one app type serves both.
  if (opts.https) Object.assign(serverOptions, { https: serverTlsOptions(opts.https) });
  const app: MdmApp = Fastify(serverOptions).withTypeProvider<TypeBoxTypeProvider>();
  // First hook of all: a refused request (401, 403) is part of the trace too.
  addTracingHooks(app);
  // Beat times kept in memory are written before the database closes (services exist once build() has run).
  let flushBeats = (): void => {};
  app.addHook('onClose', async () => {
    try {
      flushBeats();
    } finally {
      if (typeof opts.db === 'string') db.close();
    }
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'pflex MDM API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(fastifyJwt, { secret: deriveKey(opts.clusterKey, 'jwt') });
  // Mutations are limited per user (per address before login); reads are not, and neither are
  // components: their heartbeats and IO-token requests must never be throttled into failure.
  // Runs as a preHandler, after the access check has named the caller.
  await app.register(fastifyRateLimit, {
    hook: 'preHandler',
    max: config.rateLimitMutationsMax > 0 ? config.rateLimitMutationsMax : Number.MAX_SAFE_INTEGER,
    timeWindow: config.rateLimitWindowMs,
    allowList: (req) => !MUTATING.has(req.method) || req.user?.role === 'component',
    keyGenerator: (req) => (req.user ? `user:${req.user.sub}` : `ip:${req.ip}`),
    errorResponseBuilder: (_req, ctx) => new PflexError('PFLEX_ERR_RATE_LIMITED', `rate limit of ${ctx.max} requests per window exceeded: retry in ${ctx.after}`,
      { retryAfterMs: ctx.ttl }),
  });

  const services = createServices({
    db, clusterKey: opts.clusterKey, config, clock, place: opts.place ?? computePlacement, peer: peerHttp(opts.https),
    sign: (claims, ttlS) => app.jwt.sign(claims, { expiresIn: `${ttlS}s` }),
    processMetrics: opts.processMetrics ?? false,
    backupDir: opts.backupDir,
  });
  services.rebuild.logger = app.log;
  services.reclaim.logger = app.log;
  services.backup.logger = app.log;
  flushBeats = () => services.health.flushBeats();
  const routes: RouteInfo[] = [];
  app.decorate('mdm', { services, db, config, clock, routes });

  // Fail closed: a route without an access level is a bug caught at startup.
  app.addHook('onRoute', (r) => {
    const access = r.config?.access;
    if (access === undefined) throw new Error(`route ${String(r.method)} ${r.url} declares no access level`);
    for (const method of [r.method].flat()) {
      if (method !== 'HEAD') routes.push({ method, url: r.url, access });
    }
  });

  const verified = new VerifiedTokens();
  const scrapeToken = scrapeAuthChecker(opts.clusterKey);
  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access ?? 'read';
    if (access === 'public') return;
    if (access === 'metrics' && scrapeToken(req.headers.authorization)) return;
    let claims: Claims;
    const header = req.headers.authorization;
    const cached = header === undefined ? undefined : verified.get(header);
    if (cached && cached.untilMs > Date.now()) {
      claims = cached.claims;
      req.user = claims;
    } else {
      try {
        claims = await req.jwtVerify<Claims>();
      } catch {
        throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', 'a valid bearer token is required (POST /auth/login or /auth/component)');
      }
      if (header !== undefined) verified.remember(header, claims);
    }
    services.auth.checkClaims(claims);
    if (!ALLOWED[access].includes(claims.role)) {
      throw new PflexError('PFLEX_ERR_FORBIDDEN', `role ${claims.role} may not call ${req.method} ${req.routeOptions.url ?? req.url}`);
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    if (!MUTATING.has(req.method)) return payload;
    const status = reply.statusCode;
    const success = status < 400;
    if (success && req.routeOptions.config.audit === 'failures') return payload;
    // A throttled flood is not copied into the audit log request by request (lockouts are audited).
    if (req.pflexErrorCode === 'PFLEX_ERR_RATE_LIMITED') return payload;
    const body = req.body as { username?: unknown; name?: unknown } | undefined;
    const attempted = req.url.startsWith('/auth/') && body && typeof body === 'object'
      ? (typeof body.username === 'string' ? body.username : typeof body.name === 'string' ? body.name : undefined)
      : undefined;
    try {
      services.audit.record({
        atMs: clock(), actor: req.user?.sub ?? attempted ?? 'anonymous', role: req.user?.role ?? null,
        action: `${req.method} ${req.routeOptions.url ?? req.url}`, target: req.url.slice(0, 512), status,
        result: success ? 'success' : 'failure', errorCode: req.pflexErrorCode ?? null, ip: req.ip,
      });
    } catch (err) {
      req.log.error({ err }, 'audit write failed');
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toHttpError(err);
    if (e.status >= 500) req.log.error({ err }, 'request failed');
    req.pflexErrorCode = e.code;
    return reply.status(e.status).send(e.body);
  });
  app.setNotFoundHandler((req, reply) => {
    const e = toHttpError(new PflexError('PFLEX_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
    req.pflexErrorCode = e.code;
    return reply.status(e.status).send(e.body);
  });

  if (opts.healthTimer) {
    const timer = setInterval(() => {
      try {
        services.health.tick();
      } catch (err) {
        app.log.error({ err }, 'health tick failed');
      }
    }, config.healthTickMs);
    timer.unref();
    app.addHook('onClose', async () => clearInterval(timer));
    // Rebuild, rebalance and drain are driven by the same server-only loop style (tests call rebuild.tick()).
    const rebuildTimer = setInterval(() => {
      services.rebuild.tick().catch((err: unknown) => app.log.error({ err }, 'rebuild tick failed'));
    }, config.rebuildTickMs);
    rebuildTimer.unref();
    app.addHook('onClose', async () => clearInterval(rebuildTimer));
    // Snapshot policies and the reclaim of freed layers (tests call snapshots.tick()).
    const snapshotTimer = setInterval(() => {
      services.snapshots.tick().catch((err: unknown) => app.log.error({ err }, 'snapshot tick failed'));
    }, config.snapshotTickMs);
    snapshotTimer.unref();
    app.addHook('onClose', async () => clearInterval(snapshotTimer));
    const reclaimTimer = setInterval(() => {
      services.reclaim.tick().catch((err: unknown) => app.log.error({ err }, 'reclaim tick failed'));
    }, config.reclaimTickMs);
    reclaimTimer.unref();
    app.addHook('onClose', async () => clearInterval(reclaimTimer));
    if (config.backupIntervalMs > 0 && opts.backupDir) {
      const backupTimer = setInterval(() => void services.backup.scheduled(), config.backupIntervalMs);
      backupTimer.unref();
      app.addHook('onClose', async () => clearInterval(backupTimer));
    }
  }

  registerRoutes(app, services);
  app.get('/docs/json', { config: { access: 'read' }, schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}

