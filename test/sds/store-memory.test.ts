import t from 'tap';
import { MemoryChunkStore } from '../../src/sds/store/memory-store.js';
import { storeContract } from './store-contract.js';

storeContract(t, async () => new MemoryChunkStore());

t.test('a simulated crash keeps exactly the flushed and durable writes', async (t) => {
  const s = new MemoryChunkStore();
  const k = { treeId: 1, chunkIndex: 0, layerId: 0 };
  await s.write(1, k, 0, Buffer.alloc(10, 1));
  await s.flush();
  await s.write(1, k, 0, Buffer.alloc(10, 2));
  await s.write(1, { ...k, chunkIndex: 1 }, 0, Buffer.alloc(10, 3), true);
  await s.write(1, { ...k, chunkIndex: 2 }, 0, Buffer.alloc(10, 4));
  s.crash();
  t.same(await s.read(1, k, 0, 10), Buffer.alloc(10, 1));
  t.same(await s.read(1, { ...k, chunkIndex: 1 }, 0, 10), Buffer.alloc(10, 3));
  t.equal(await s.read(1, { ...k, chunkIndex: 2 }, 0, 10), null);
});
