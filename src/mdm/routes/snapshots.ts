import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { ERROR_ANSWERS, Id, IdParams, Ms, Name, Ok, SnapshotPolicy, Volume } from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';

const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });
const SnapshotItem = obj({ volumeId: Id, name: Name });
const Retain = Type.Integer({ minimum: 1, maximum: 10_000 });

export function snapshotRoutes(app: MdmApp, s: Services): void {
  const snaps = s.snapshots;

  app.get('/snapshots', {
    config: { access: 'read' },
    schema: {
      tags: ['snapshots'], summary: 'Snapshots (volumes of kind snapshot), optionally of one volume',
      querystring: obj({ volumeId: Type.Optional(Id), space: Type.Optional(Type.Boolean({ description: 'add space (layer bytes, reclaimable bytes), asked of the SDSs' })) }),
      response: { 200: Type.Array(Volume), ...ERROR_ANSWERS },
    },
  }, async (req) => {
    const list = s.volumes.list({ kind: 'snapshot' }).filter((v) => req.query.volumeId === undefined || v.sourceVolumeId === req.query.volumeId);
    return req.query.space ? s.space.of(list) : list;
  });
  app.post('/snapshots', {
    config: { access: 'admin' },
    schema: {
      tags: ['snapshots'], summary: 'Snapshot a volume (its mapped SDCs are quiesced for the cut)',
      body: SnapshotItem, response: { 201: Volume, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send((await snaps.create([req.body]))[0]!));
  app.post('/consistency-group-snapshots', {
    config: { access: 'admin' },
    schema: {
      tags: ['snapshots'], summary: 'Snapshot several volumes at one cut (one quiesce of every SDC mapping any of them)',
      body: obj({ snapshots: Type.Array(SnapshotItem, { minItems: 1, maxItems: 256 }) }),
      response: { 201: obj({ group: Type.Union([Type.String(), Type.Null()]), snapshots: Type.Array(Volume) }), ...ERROR_ANSWERS },
    },
  }, async (req, reply) => {
    const made = await snaps.create(req.body.snapshots);
    return reply.status(201).send({ group: made[0]!.snapshotGroup, snapshots: made });
  });
  app.post('/snapshots/:id/clone', {
    config: { access: 'admin' },
    schema: {
      tags: ['snapshots'], summary: 'A new writable volume on top of the snapshot (copy-on-write, same tree)',
      params: IdParams, body: obj({ name: Name }), response: { 201: Volume, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(snaps.clone(req.params.id, req.body.name)));
  app.post('/volumes/:id/revert', {
    config: { access: 'admin' },
    schema: {
      tags: ['snapshots'], summary: 'The volume\'s content becomes the snapshot\'s (its mapped SDCs are quiesced)',
      params: IdParams, body: obj({ snapshotId: Id }), response: { 200: Volume, ...ERROR_ANSWERS },
    },
  }, async (req) => snaps.revert(req.params.id, req.body.snapshotId));

  app.get('/snapshot-policies', {
    config: { access: 'read' },
    schema: { tags: ['snapshots'], response: { 200: Type.Array(SnapshotPolicy), ...ERROR_ANSWERS } },
  }, async () => snaps.listPolicies());
  app.get('/snapshot-policies/:id', {
    config: { access: 'read' },
    schema: { tags: ['snapshots'], params: IdParams, response: { 200: SnapshotPolicy, ...ERROR_ANSWERS } },
  }, async (req) => snaps.getPolicy(req.params.id));
  app.post('/snapshot-policies', {
    config: { access: 'admin' },
    schema: {
      tags: ['snapshots'], summary: 'Snapshot a volume every intervalMs, keeping the newest `retain` snapshots of the policy',
      body: obj({ name: Name, volumeId: Id, intervalMs: Ms, retain: Retain }), response: { 201: SnapshotPolicy, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(snaps.createPolicy(req.body)));
  app.patch('/snapshot-policies/:id', {
    config: { access: 'admin' },
    schema: {
      tags: ['snapshots'], params: IdParams, body: obj({ intervalMs: Ms, retain: Retain }), response: { 200: SnapshotPolicy, ...ERROR_ANSWERS },
    },
  }, async (req) => snaps.updatePolicy(req.params.id, req.body));
  app.delete('/snapshot-policies/:id', {
    config: { access: 'admin' },
    schema: { tags: ['snapshots'], summary: 'Stop the policy (its snapshots stay)', params: IdParams, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    snaps.deletePolicy(req.params.id);
    return { ok: true };
  });
}
