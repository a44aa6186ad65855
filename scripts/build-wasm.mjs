/* global URL, WebAssembly */
// Part of `npm run build` (after tsc): assembles the WebAssembly kernels' WAT (sim/wasm/kernels-wat.ts,
// compiled into dist) with wabt into dist/sim/wasm/kernels.wasm, which compiled runs load.
import { writeFileSync } from 'node:fs';
import { assembleKernels } from '../dist/sim/wasm/kernels.js';

const out = new URL('../dist/sim/wasm/kernels.wasm', import.meta.url);
const bytes = await assembleKernels();
await WebAssembly.compile(bytes); // validates, SIMD and the shared memory included
writeFileSync(out, bytes);
