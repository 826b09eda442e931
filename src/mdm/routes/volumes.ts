import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { MDM_LIMITS } from '../config.js';
import { AccessMode, Bytes, ERROR_ANSWERS, ForceQuery, Id, IdParams, IoToken, LayerRelease, Name, Provisioning, Volume, VolumeDeletion, VolumeKind, VolumeTrim, LayerDeletion } from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';
import { requireSelf } from './guards.js';

const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });
const MappingParams = obj({ id: Id, sdcId: Id });

export function volumeRoutes(app: MdmApp, s: Services): void {
  const v = s.volumes;

  app.get('/volumes', {
    config: { access: 'read' },
    schema: {
      tags: ['volumes'], querystring: obj({ storagePoolId: Type.Optional(Id), name: Type.Optional(Name), kind: Type.Optional(VolumeKind) }),
      response: { 200: Type.Array(Volume), ...ERROR_ANSWERS },
    },
  }, async (req) => v.list({
    ...(req.query.storagePoolId !== undefined ? { poolId: req.query.storagePoolId } : {}),
    ...(req.query.name !== undefined ? { name: req.query.name } : {}),
    ...(req.query.kind !== undefined ? { kind: req.query.kind } : {}),
  }));
  app.get('/volumes/:id', {
    config: { access: 'read' },
    schema: {
      tags: ['volumes'], params: IdParams, querystring: obj({ space: Type.Optional(Type.Boolean({ description: 'add space (layer bytes, reclaimable bytes), asked of the SDSs' })) }),
      response: { 200: Volume, ...ERROR_ANSWERS },
    },
  }, async (req) => (req.query.space ? (await s.space.of([v.get(req.params.id)]))[0]! : v.get(req.params.id)));
  app.post('/volumes', {
    config: { access: 'admin' },
    schema: {
      tags: ['volumes'], summary: 'Create a volume (thick reserves pool capacity now)',
      body: obj({ name: Name, storagePoolId: Id, sizeBytes: Bytes, provisioning: Type.Optional(Provisioning) }),
      response: { 201: Volume, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(v.create(req.body)));
  app.patch('/volumes/:id', {
    config: { access: 'admin' },
    schema: { tags: ['volumes'], summary: 'Rename', params: IdParams, body: obj({ name: Name }), response: { 200: Volume, ...ERROR_ANSWERS } },
  }, async (req) => v.rename(req.params.id, req.body.name));
  app.post('/volumes/:id/resize', {
    config: { access: 'admin' },
    schema: {
      tags: ['volumes'], summary: 'Expand; shrink only when unmapped and forced',
      params: IdParams, body: obj({ sizeBytes: Bytes, force: Type.Optional(Type.Boolean()) }),
      response: { 200: Volume, ...ERROR_ANSWERS },
    },
  }, async (req) => v.resize(req.params.id, req.body.sizeBytes, req.body.force ?? false));
  app.delete('/volumes/:id', {
    config: { access: 'admin' },
    schema: {
      tags: ['volumes'],
      summary: 'Delete a volume or snapshot (refused while mapped unless force); data removal is asynchronous: the whole tree when this was its last volume, else the freed layers',
      params: IdParams, querystring: ForceQuery, response: { 200: Type.Union([VolumeDeletion, LayerRelease]), ...ERROR_ANSWERS },
    },
  }, async (req) => {
    const volume = v.get(req.params.id);
    const r = v.delete(req.params.id, req.query.force ?? false);
    return r.deletion ?? { volumeId: volume.id, volumeName: volume.name, freedLayers: r.freedLayers };
  });

  app.post('/volumes/:id/mappings', {
    config: { access: 'admin' },
    schema: {
      tags: ['volumes'], summary: 'Map to an SDC (a second SDC needs allowMultiMap)',
      params: IdParams, body: obj({ sdcId: Id, accessMode: Type.Optional(AccessMode), allowMultiMap: Type.Optional(Type.Boolean()) }),
      response: { 201: Volume, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(v.map(req.params.id, req.body.sdcId, req.body.accessMode, req.body.allowMultiMap ?? false)));
  app.patch('/volumes/:id/mappings/:sdcId', {
    config: { access: 'admin' },
    schema: { tags: ['volumes'], params: MappingParams, body: obj({ accessMode: AccessMode }), response: { 200: Volume, ...ERROR_ANSWERS } },
  }, async (req) => v.setAccessMode(req.params.id, req.params.sdcId, req.body.accessMode));
  app.put('/volumes/:id/mappings/:sdcId/qos', {
    config: { access: 'admin' },
    schema: {
      tags: ['volumes'], summary: 'QoS limits of a mapping, enforced by the SDC (0 = unlimited); applied live within a heartbeat', params: MappingParams,
      body: obj({ iopsLimit: Type.Integer({ minimum: 0, maximum: MDM_LIMITS.qosIopsMax }), bandwidthLimitBytesPerSec: Type.Integer({ minimum: 0, maximum: MDM_LIMITS.qosBandwidthBytesPerSecMax }) }),
      response: { 200: Volume, ...ERROR_ANSWERS },
    },
  }, async (req) => v.setQos(req.params.id, req.params.sdcId, req.body));
  app.delete('/volumes/:id/mappings/:sdcId', {
    config: { access: 'admin' },
    schema: { tags: ['volumes'], summary: 'Unmap (the SDC can no longer renew its IO token)', params: MappingParams, response: { 200: Volume, ...ERROR_ANSWERS } },
  }, async (req) => v.unmap(req.params.id, req.params.sdcId));

  app.get('/volume-deletions', {
    config: { access: 'read' },
    schema: {
      tags: ['volumes'], summary: 'Deleted volumes whose chunks are being (pending) or were (done) removed from the SDSs, with progress',
      querystring: obj({ state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('done')])), storagePoolId: Type.Optional(Id) }),
      response: { 200: Type.Array(VolumeDeletion), ...ERROR_ANSWERS },
    },
  }, async (req) => v.listDeletions({
    ...(req.query.state !== undefined ? { state: req.query.state } : {}),
    ...(req.query.storagePoolId !== undefined ? { poolId: req.query.storagePoolId } : {}),
  }));
  app.get('/volume-trims', {
    config: { access: 'read' },
    schema: {
      tags: ['volumes'], summary: 'Shrunk volumes whose data past the new end is being (pending) or was (done) removed from the SDSs',
      querystring: obj({ state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('done')])), volumeId: Type.Optional(Id) }),
      response: { 200: Type.Array(VolumeTrim), ...ERROR_ANSWERS },
    },
  }, async (req) => v.listTrims({
    ...(req.query.state !== undefined ? { state: req.query.state } : {}),
    ...(req.query.volumeId !== undefined ? { volumeId: req.query.volumeId } : {}),
  }));

  app.get('/layer-deletions', {
    config: { access: 'read' },
    schema: {
      tags: ['volumes'], summary: 'Freed snapshot layers whose chunks are being (pending) or were (done) removed from the SDSs, with progress',
      querystring: obj({ state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('done')])), volumeTreeId: Type.Optional(Id) }),
      response: { 200: Type.Array(LayerDeletion), ...ERROR_ANSWERS },
    },
  }, async (req) => v.listLayerDeletions({
    ...(req.query.state !== undefined ? { state: req.query.state } : {}),
    ...(req.query.volumeTreeId !== undefined ? { volumeTreeId: req.query.volumeTreeId } : {}),
  }));

  app.post('/sdcs/:id/tokens', {
    // Issuing is routine (every SDC renews its tokens) and changes nothing: like heartbeats, only refusals are audited.
    config: { access: 'component', audit: 'failures' },
    schema: {
      tags: ['sdc'], summary: 'IO token for a volume mapped to this SDC (base64url), with the mapping\'s rights',
      params: IdParams, body: obj({ volumeId: Id }), response: { 200: IoToken, ...ERROR_ANSWERS },
    },
  }, async (req) => {
    requireSelf(req, 'sdc', s.topology.getSdcRow(req.params.id).guid);
    return s.tokens.issue(req.params.id, req.body.volumeId);
  });
}
