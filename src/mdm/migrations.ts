/**
 * Versioned schema of mdm.db. Migrations only ever append: a released
 * migration is never edited, a change is a new entry. PRAGMA user_version
 * holds the number of migrations applied.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: topology, volumes, placement, health, users, audit, alerts
  `
  CREATE TABLE protection_domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
  );
  CREATE TABLE storage_pools (
    id INTEGER PRIMARY KEY,
    pd_id INTEGER NOT NULL REFERENCES protection_domains(id),
    name TEXT NOT NULL,
    replication_factor INTEGER NOT NULL CHECK (replication_factor IN (2, 3)),
    chunk_bytes INTEGER NOT NULL,
    pg_count INTEGER NOT NULL,
    default_provisioning TEXT NOT NULL CHECK (default_provisioning IN ('thin', 'thick')),
    capacity_high_pct INTEGER NOT NULL,
    capacity_critical_pct INTEGER NOT NULL,
    map_epoch INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (pd_id, name)
  );
  CREATE TABLE fault_sets (
    id INTEGER PRIMARY KEY,
    pd_id INTEGER NOT NULL REFERENCES protection_domains(id),
    name TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (pd_id, name)
  );
  CREATE TABLE sds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pd_id INTEGER NOT NULL REFERENCES protection_domains(id),
    pool_id INTEGER NOT NULL REFERENCES storage_pools(id),
    fault_set_id INTEGER REFERENCES fault_sets(id),
    address TEXT NOT NULL,
    data_port INTEGER NOT NULL,
    control_port INTEGER,
    mgmt_port INTEGER,
    capacity_bytes INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'STALE', 'DOWN')),
    last_heartbeat_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
  );
  CREATE INDEX sds_pool ON sds(pool_id);
  CREATE TABLE sdcs (
    id INTEGER PRIMARY KEY,
    guid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    address TEXT,
    state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'STALE', 'DOWN')),
    last_heartbeat_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
  );
  CREATE TABLE volume_trees (
    id INTEGER PRIMARY KEY,
    pool_id INTEGER NOT NULL REFERENCES storage_pools(id),
    created_at_ms INTEGER NOT NULL
  );
  CREATE TABLE volumes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pool_id INTEGER NOT NULL REFERENCES storage_pools(id),
    volume_tree_id INTEGER NOT NULL REFERENCES volume_trees(id),
    size_bytes INTEGER NOT NULL,
    provisioning TEXT NOT NULL CHECK (provisioning IN ('thin', 'thick')),
    created_at_ms INTEGER NOT NULL
  );
  CREATE INDEX volumes_pool ON volumes(pool_id);
  CREATE TABLE volume_mappings (
    volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    sdc_id INTEGER NOT NULL REFERENCES sdcs(id),
    access_mode TEXT NOT NULL CHECK (access_mode IN ('readWrite', 'readOnly')),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (volume_id, sdc_id)
  );
  CREATE INDEX volume_mappings_sdc ON volume_mappings(sdc_id);
  -- Data removal on the SDSs is asynchronous: a deleted volume leaves a row
  -- here that SDSs (or rebuild) drain; no FK, the volume row is gone.
  CREATE TABLE volume_deletions (
    id INTEGER PRIMARY KEY,
    volume_id INTEGER NOT NULL,
    volume_name TEXT NOT NULL,
    volume_tree_id INTEGER NOT NULL,
    pool_id INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    created_at_ms INTEGER NOT NULL,
    done_at_ms INTEGER
  );
  CREATE TABLE pgs (
    pool_id INTEGER NOT NULL REFERENCES storage_pools(id) ON DELETE CASCADE,
    pg INTEGER NOT NULL,
    members TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    PRIMARY KEY (pool_id, pg)
  );
  CREATE INDEX pgs_epoch ON pgs(pool_id, epoch);
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'monitor')),
    password_hash TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
  );
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('success', 'failure')),
    error_code TEXT,
    ip TEXT
  );
  CREATE INDEX audit_at ON audit_log(at_ms);
  CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT,
    severity TEXT NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    raised_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    resolved_at_ms INTEGER,
    resolved_by TEXT
  );
  CREATE UNIQUE INDEX alerts_open_key ON alerts(dedup_key) WHERE state = 'open' AND dedup_key IS NOT NULL;
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 2: rebuild — joining PG members, draining SDSs, rebuild jobs with progress
  `
  ALTER TABLE pgs ADD COLUMN joining TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE sds ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE rebuild_jobs (
    id INTEGER PRIMARY KEY,
    pool_id INTEGER NOT NULL REFERENCES storage_pools(id) ON DELETE CASCADE,
    pg INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('rebuild', 'rebalance', 'drain')),
    source_sds_id INTEGER NOT NULL,
    target_sds_id INTEGER NOT NULL,
    replaces_sds_id INTEGER,
    epoch INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
    chunks_done INTEGER NOT NULL DEFAULT 0,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    finished_at_ms INTEGER
  );
  CREATE INDEX rebuild_jobs_state ON rebuild_jobs(state, pool_id, pg);
  `,
  // 3: delta rebuild — how a copy ran (whole or delta) and the bytes it did not have to send
  `
  ALTER TABLE rebuild_jobs ADD COLUMN mode TEXT NOT NULL DEFAULT 'full' CHECK (mode IN ('full', 'delta'));
  ALTER TABLE rebuild_jobs ADD COLUMN bytes_skipped INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: snapshots — layers of a volume tree, snapshots/clones as volume rows pointing at a layer, policies;
  //    SDC control ports (the MDM quiesces mapped SDCs around a snapshot)
  `
  ALTER TABLE volume_trees ADD COLUMN next_layer_id INTEGER NOT NULL DEFAULT 1;
  CREATE TABLE layers (
    tree_id INTEGER NOT NULL REFERENCES volume_trees(id),
    layer_id INTEGER NOT NULL,
    parent_layer_id INTEGER,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tree_id, layer_id)
  );
  INSERT INTO layers (tree_id, layer_id, parent_layer_id, created_at_ms) SELECT volume_tree_id, 0, NULL, created_at_ms FROM volumes;
  ALTER TABLE volumes ADD COLUMN kind TEXT NOT NULL DEFAULT 'volume' CHECK (kind IN ('volume', 'snapshot'));
  ALTER TABLE volumes ADD COLUMN layer_id INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE volumes ADD COLUMN source_volume_id INTEGER;
  ALTER TABLE volumes ADD COLUMN snapshot_group TEXT;
  ALTER TABLE volumes ADD COLUMN policy_id INTEGER;
  CREATE INDEX volumes_tree ON volumes(volume_tree_id, layer_id);
  CREATE TABLE layer_deletions (
    id INTEGER PRIMARY KEY,
    pool_id INTEGER NOT NULL,
    tree_id INTEGER NOT NULL,
    layer_id INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    created_at_ms INTEGER NOT NULL,
    done_at_ms INTEGER
  );
  CREATE TABLE snapshot_policies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    interval_ms INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    last_run_ms INTEGER,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL
  );
  ALTER TABLE sdcs ADD COLUMN control_port INTEGER;
  `,
  // 5: QoS limits per volume-to-SDC mapping (0 = unlimited), enforced by the SDC
  `
  ALTER TABLE volume_mappings ADD COLUMN iops_limit INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE volume_mappings ADD COLUMN bandwidth_limit_bps INTEGER NOT NULL DEFAULT 0;
  `,
  // 6: lifecycle — reclaim: deleted volumes and shrunk tails are removed from the SDSs by the MDM (src/mdm/services/reclaim.ts);
  //    freed snapshot layers (layer_deletions, migration 4) go through the same per-SDS confirmed mechanism;
  //    login lockout (login_failures)
  `
  ALTER TABLE volume_deletions ADD COLUMN chunks_freed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE volume_deletions ADD COLUMN bytes_freed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE volume_deletions ADD COLUMN last_error TEXT;
  CREATE TABLE volume_trims (
    id INTEGER PRIMARY KEY,
    volume_id INTEGER NOT NULL,
    volume_tree_id INTEGER NOT NULL,
    pool_id INTEGER NOT NULL,
    from_bytes INTEGER NOT NULL,
    chunk_bytes INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    chunks_freed INTEGER NOT NULL DEFAULT 0,
    bytes_freed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL,
    done_at_ms INTEGER
  );
  CREATE INDEX volume_trims_state ON volume_trims(state, volume_id);
  ALTER TABLE layer_deletions ADD COLUMN chunks_freed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE layer_deletions ADD COLUMN bytes_freed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE layer_deletions ADD COLUMN last_error TEXT;
  -- Which SDS has done which reclaim task (task: 'deletion:<id>', 'trim:<id>' or 'layer:<id>').
  CREATE TABLE reclaim_confirmations (
    task TEXT NOT NULL,
    sds_id INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (task, sds_id)
  );
  -- The highest volume id ever given (volumes, snapshots, clones): ids are never reused.
  CREATE TABLE volume_id_high (id INTEGER NOT NULL);
  INSERT INTO volume_id_high (id) SELECT MAX(COALESCE((SELECT MAX(id) FROM volumes), 0), COALESCE((SELECT MAX(volume_id) FROM volume_deletions), 0));
  -- login lockout: consecutive failed logins per user name (known or not, so a lockout reveals nothing)
  CREATE TABLE login_failures (
    user_name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at_ms INTEGER NOT NULL,
    locked_until_ms INTEGER
  );
  CREATE INDEX login_failures_last ON login_failures(last_failure_at_ms);
  `,
];
