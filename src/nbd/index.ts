/** NBD fixed-newstyle server library: knows block backends, nothing of pflex. */
export type { BackendCapabilities, BlockBackend, Extent, NbdExport, WriteOptions, ZeroOptions } from './backend.js';
export { NbdError } from './errors.js';
export { NBD_ERRNO } from './constants.js';
export { DEFAULT_LIMITS, type NbdLimits } from './limits.js';
export { MemoryBackend, MEMORY_PAGE_BYTES } from './memory-backend.js';
export { FileBackend, type FileBackendOptions } from './file-backend.js';
export { NbdServer, singleExportOptions, type NbdServerOptions } from './server.js';
