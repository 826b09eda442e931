import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { MDM_LIMITS } from '../config.js';
import {
  Beat, Bytes, ERROR_ANSWERS, FaultSet, ForceQuery, Id, IdParams, Name, Ok, Pct, PgEntry, PgMap, Port, ProtectionDomain, Provisioning,
  Sdc, SdcBeatBody, Sds, SdsBeatBody, StoragePool,
} from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';
import { requireSelf } from './guards.js';

const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });
const Address = Type.String({ minLength: 1, maxLength: 255 });
const Guid = Type.String({ minLength: 1, maxLength: MDM_LIMITS.nameLengthMax, pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' });

export function topologyRoutes(app: MdmApp, s: Services): void {
  protectionDomainRoutes(app, s);
  storagePoolRoutes(app, s);
  pgRoutes(app, s);
  faultSetRoutes(app, s);
  sdsRoutes(app, s);
  sdcRoutes(app, s);
  discoveryRoutes(app, s);
}

/** Protection domains. */
function protectionDomainRoutes(app: MdmApp, s: Services): void {
  const t = s.topology;
  app.get('/protection-domains', {
    config: { access: 'read' },
    schema: { tags: ['topology'], response: { 200: Type.Array(ProtectionDomain), ...ERROR_ANSWERS } },
  }, async () => t.listPds());
  app.get('/protection-domains/:id', {
    config: { access: 'read' },
    schema: { tags: ['topology'], params: IdParams, response: { 200: ProtectionDomain, ...ERROR_ANSWERS } },
  }, async (req) => t.getPd(req.params.id));
  app.post('/protection-domains', {
    config: { access: 'admin' },
    schema: { tags: ['topology'], body: obj({ name: Name }), response: { 201: ProtectionDomain, ...ERROR_ANSWERS } },
  }, async (req, reply) => reply.status(201).send(t.createPd(req.body.name)));
  app.patch('/protection-domains/:id', {
    config: { access: 'admin' },
    schema: { tags: ['topology'], params: IdParams, body: obj({ name: Name }), response: { 200: ProtectionDomain, ...ERROR_ANSWERS } },
  }, async (req) => t.renamePd(req.params.id, req.body.name));
  app.delete('/protection-domains/:id', {
    config: { access: 'admin' },
    schema: { tags: ['topology'], params: IdParams, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    t.deletePd(req.params.id);
    return { ok: true };
  });
}

/** Storage pools. */
function storagePoolRoutes(app: MdmApp, s: Services): void {
  const t = s.topology;
  app.get('/storage-pools', {
    config: { access: 'read' },
    schema: {
      tags: ['topology'], querystring: obj({ protectionDomainId: Type.Optional(Id), name: Type.Optional(Name) }),
      response: { 200: Type.Array(StoragePool), ...ERROR_ANSWERS },
    },
  }, async (req) => t.listPools(req.query.protectionDomainId).filter((p) => req.query.name === undefined || p.name === req.query.name));
  app.get('/storage-pools/:id', {
    config: { access: 'read' },
    schema: { tags: ['topology'], params: IdParams, response: { 200: StoragePool, ...ERROR_ANSWERS } },
  }, async (req) => t.getPool(req.params.id));
  app.post('/storage-pools', {
    config: { access: 'admin' },
    schema: {
      tags: ['topology'],
      body: obj({
        protectionDomainId: Id, name: Name,
        replicationFactor: Type.Union([Type.Literal(2), Type.Literal(3)]),
        chunkBytes: Type.Optional(Type.Integer({ minimum: MDM_LIMITS.chunkBytesMin, maximum: MDM_LIMITS.chunkBytesMax })),
        pgCount: Type.Optional(Type.Integer({ minimum: 1, maximum: MDM_LIMITS.pgCountMax })),
        defaultProvisioning: Type.Optional(Provisioning),
        capacityHighPct: Type.Optional(Pct), capacityCriticalPct: Type.Optional(Pct),
      }),
      response: { 201: StoragePool, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(t.createPool(req.body)));
  app.patch('/storage-pools/:id', {
    config: { access: 'admin' },
    schema: {
      tags: ['topology'], params: IdParams,
      body: obj({ name: Type.Optional(Name), defaultProvisioning: Type.Optional(Provisioning), capacityHighPct: Type.Optional(Pct), capacityCriticalPct: Type.Optional(Pct) }),
      response: { 200: StoragePool, ...ERROR_ANSWERS },
    },
  }, async (req) => t.updatePool(req.params.id, req.body));
  app.delete('/storage-pools/:id', {
    config: { access: 'admin' },
    schema: { tags: ['topology'], params: IdParams, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    t.deletePool(req.params.id);
    return { ok: true };
  });
}

/** Placement groups: the map, fencing. */
function pgRoutes(app: MdmApp, s: Services): void {
  app.get('/storage-pools/:id/pg-map', {
    config: { access: 'read' },
    schema: {
      tags: ['placement'], summary: 'The PG map of a pool (only PGs changed after sinceEpoch when given)',
      params: IdParams, querystring: obj({ sinceEpoch: Type.Optional(Type.Integer({ minimum: 0 })) }),
      response: { 200: PgMap, ...ERROR_ANSWERS },
    },
  }, async (req) => s.pgmaps.map(req.params.id, req.query.sinceEpoch));
  app.post('/storage-pools/:id/pgs/:pg/fence', {
    config: { access: 'component' },
    schema: {
      tags: ['placement'], summary: 'Drop a failed member from a PG (new epoch; the next member becomes primary)',
      params: obj({ id: Id, pg: Type.Integer({ minimum: 0, maximum: MDM_LIMITS.pgCountMax }) }),
      body: obj({ sdsId: Id, epoch: Type.Integer({ minimum: 0 }) }),
      response: { 200: Type.Object({ fenced: Type.Boolean(), pg: PgEntry, map: PgMap }), ...ERROR_ANSWERS },
    },
  }, async (req) => {
    const r = s.pgmaps.fence(req.params.id, req.params.pg, req.body.sdsId, req.body.epoch);
    return { fenced: r.fenced, pg: r.entry, map: r.map };
  });
}

/** Fault sets. */
function faultSetRoutes(app: MdmApp, s: Services): void {
  const t = s.topology;
  app.get('/fault-sets', {
    config: { access: 'read' },
    schema: { tags: ['topology'], querystring: obj({ protectionDomainId: Type.Optional(Id) }), response: { 200: Type.Array(FaultSet), ...ERROR_ANSWERS } },
  }, async (req) => t.listFaultSets(req.query.protectionDomainId));
  app.get('/fault-sets/:id', {
    config: { access: 'read' },
    schema: { tags: ['topology'], params: IdParams, response: { 200: FaultSet, ...ERROR_ANSWERS } },
  }, async (req) => t.getFaultSet(req.params.id));
  app.post('/fault-sets', {
    config: { access: 'admin' },
    schema: { tags: ['topology'], body: obj({ protectionDomainId: Id, name: Name }), response: { 201: FaultSet, ...ERROR_ANSWERS } },
  }, async (req, reply) => reply.status(201).send(t.createFaultSet(req.body.protectionDomainId, req.body.name)));
  app.delete('/fault-sets/:id', {
    config: { access: 'admin' },
    schema: { tags: ['topology'], params: IdParams, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    t.deleteFaultSet(req.params.id);
    return { ok: true };
  });
}

/** SDS: registration, removal, heartbeat. */
function sdsRoutes(app: MdmApp, s: Services): void {
  const t = s.topology;
  app.get('/sds', {
    config: { access: 'read' },
    schema: {
      tags: ['sds'], querystring: obj({ storagePoolId: Type.Optional(Id), protectionDomainId: Type.Optional(Id), name: Type.Optional(Name) }),
      response: { 200: Type.Array(Sds), ...ERROR_ANSWERS },
    },
  }, async (req) => {
    const { storagePoolId, protectionDomainId, name } = req.query;
    return t.listSds({ ...(storagePoolId ? { poolId: storagePoolId } : {}), ...(protectionDomainId ? { pdId: protectionDomainId } : {}) })
      .filter((x) => name === undefined || x.name === name);
  });
  app.get('/sds/:id', {
    config: { access: 'read' },
    schema: { tags: ['sds'], params: IdParams, response: { 200: Sds, ...ERROR_ANSWERS } },
  }, async (req) => t.getSds(req.params.id));
  app.post('/sds', {
    config: { access: 'component' },
    schema: {
      tags: ['sds'], summary: 'SDS self-registration (idempotent by name): 201 when new, 200 when known',
      body: obj({
        name: Name, protectionDomainName: Name, storagePoolName: Name, faultSetName: Type.Optional(Name),
        address: Address, dataPort: Port, controlPort: Type.Optional(Port), mgmtPort: Type.Optional(Port), capacityBytes: Bytes,
        cleanStop: Type.Optional(Type.Boolean({ description: 'false: the previous run did not stop cleanly (may have lost un-flushed writes); the SDS is fenced out of its PGs' })),
      }),
      response: { 200: Sds, 201: Sds, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => {
    requireSelf(req, 'sds', req.body.name);
    const r = t.registerSds(req.body);
    if (r.fencedPgs || r.keptPgs) {
      req.log.warn({ sdsId: r.sds.id, name: r.sds.name, fencedPgs: r.fencedPgs, keptPgs: r.keptPgs }, 'SDS returned from an unclean stop: fenced out of its PGs (the last member of a PG stays)');
    }
    return reply.status(r.created ? 201 : 200).send(r.sds);
  });
  app.delete('/sds/:id', {
    config: { access: 'admin' },
    schema: { tags: ['sds'], summary: 'Remove an SDS (refused while it holds PGs)', params: IdParams, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    t.removeSds(req.params.id);
    return { ok: true };
  });
  app.post('/sds/:id/heartbeat', {
    config: { access: 'component', audit: 'failures' },
    schema: {
      tags: ['sds', 'health'], params: IdParams,
      body: SdsBeatBody,
      response: { 200: Beat, ...ERROR_ANSWERS },
    },
  }, async (req) => {
    const sds = t.getSds(req.params.id);
    requireSelf(req, 'sds', sds.name);
    return s.health.sdsHeartbeat(req.params.id, req.body, sds);
  });
}

/** SDC: registration, removal, heartbeat. */
function sdcRoutes(app: MdmApp, s: Services): void {
  const t = s.topology;
  app.get('/sdcs', {
    config: { access: 'read' },
    schema: { tags: ['sdc'], querystring: obj({ guid: Type.Optional(Guid), name: Type.Optional(Name) }), response: { 200: Type.Array(Sdc), ...ERROR_ANSWERS } },
  }, async (req) => t.listSdcs().filter((x) => (req.query.guid === undefined || x.guid === req.query.guid) && (req.query.name === undefined || x.name === req.query.name)));
  app.get('/sdcs/:id', {
    config: { access: 'read' },
    schema: { tags: ['sdc'], params: IdParams, response: { 200: Sdc, ...ERROR_ANSWERS } },
  }, async (req) => t.getSdc(req.params.id));
  app.post('/sdcs', {
    config: { access: 'component' },
    schema: {
      tags: ['sdc'], summary: 'SDC self-registration (idempotent by guid): 201 when new, 200 when known',
      body: obj({ guid: Guid, name: Type.Optional(Name), address: Type.Optional(Address), controlPort: Type.Optional(Port) }),
      response: { 200: Sdc, 201: Sdc, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => {
    requireSelf(req, 'sdc', req.body.guid);
    const r = t.registerSdc(req.body);
    return reply.status(r.created ? 201 : 200).send(r.sdc);
  });
  app.patch('/sdcs/:id', {
    config: { access: 'admin' },
    schema: { tags: ['sdc'], params: IdParams, body: obj({ name: Name }), response: { 200: Sdc, ...ERROR_ANSWERS } },
  }, async (req) => t.renameSdc(req.params.id, req.body.name));
  app.delete('/sdcs/:id', {
    config: { access: 'admin' },
    schema: { tags: ['sdc'], summary: 'Unregister an SDC (force also unmaps its volumes)', params: IdParams, querystring: ForceQuery, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    t.unregisterSdc(req.params.id, req.query.force ?? false);
    return { ok: true };
  });
  app.post('/sdcs/:id/heartbeat', {
    config: { access: 'component', audit: 'failures' },
    schema: {
      tags: ['sdc', 'health'], summary: 'SDC heartbeat (no body, {}, or the IO counters of its mapped volumes)',
      params: IdParams, body: SdcBeatBody, response: { 200: Beat, ...ERROR_ANSWERS },
    },
    // A beat without a body (older SDCs, scripts) is an empty beat.
    preValidation: async (req) => {
      if (req.body === undefined || req.body === null) req.body = {};
    },
  }, async (req) => {
    const sdc = t.getSdcRow(req.params.id);
    requireSelf(req, 'sdc', sdc.guid);
    return s.health.sdcHeartbeat(req.params.id, sdc, req.body.volumes);
  });
}

/** The whole tree. */
function discoveryRoutes(app: MdmApp, s: Services): void {
  const t = s.topology;
  app.get('/discovery/topology', {
    config: { access: 'read' },
    schema: {
      tags: ['topology'], summary: 'The nested tree: protection domains -> pools -> SDS, fault sets; SDCs with mappings',
      response: {
        200: Type.Object({
          protectionDomains: Type.Array(Type.Object({
            ...ProtectionDomain.properties,
            storagePools: Type.Array(Type.Object({ ...StoragePool.properties, sds: Type.Array(Sds) })),
            faultSets: Type.Array(Type.Object({ ...FaultSet.properties, sdsIds: Type.Array(Type.Integer()) })),
          })),
          sdcs: Type.Array(Sdc),
        }),
        ...ERROR_ANSWERS,
      },
    },
  }, async () => t.tree());
}
