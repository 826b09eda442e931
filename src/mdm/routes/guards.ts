import type { FastifyRequest } from 'fastify';
import { PflexError } from '../../shared/errors.js';

/**
 * A component may act only as itself: an SDS token for name X may register
 * and beat only as SDS X; an SDC token (name = its guid) only as that SDC.
 * Admins may act for any component.
 */
export function requireSelf(req: FastifyRequest, kind: 'sds' | 'sdc', name: string): void {
  const u = req.user;
  if (u.role === 'admin') return;
  if (u.role !== 'component' || u.kind !== kind || u.sub !== name) {
    throw new PflexError('PFLEX_ERR_FORBIDDEN', `this token (${u.role}${u.kind ? ` ${u.kind}` : ''} ${u.sub}) may not act as ${kind} ${name}`);
  }
}
