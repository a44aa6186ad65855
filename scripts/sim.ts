// Run the CLI from the TypeScript sources (no build): npx tsx scripts/sim.ts run <config>
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv);
