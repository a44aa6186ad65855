/** Seeded random numbers: the generator lives with the simulator (sim/random.ts), which draws inputs straight into tile memory. */
export { Rng, type FillArray } from '../../sim/random.js';
