import type { MdmApp } from '../app.js';
import type { Services } from '../services/index.js';
import { authRoutes } from './auth.js';
import { backupRoutes } from './backup.js';
import { healthRoutes } from './health.js';
import { rebuildRoutes } from './rebuild.js';
import { snapshotRoutes } from './snapshots.js';
import { topologyRoutes } from './topology.js';
import { volumeRoutes } from './volumes.js';

export function registerRoutes(app: MdmApp, s: Services): void {
  authRoutes(app, s);
  topologyRoutes(app, s);
  volumeRoutes(app, s);
  healthRoutes(app, s);
  rebuildRoutes(app, s);
  snapshotRoutes(app, s);
  backupRoutes(app, s);
}
