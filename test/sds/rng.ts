// The SDS tests use the simulation's seeded PRNG, so a printed seed replays.
export { Prng as Rng } from '../../src/sim/prng.js';
