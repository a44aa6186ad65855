/** Launch the headless Chromium that test/browser/global-setup.ts found (system or bundled). */
import { chromium, type Browser } from 'playwright-core';
import { inject } from 'vitest';

// The flags keep Chromium off this machine's closed network and out of the sandbox (tests run as root).
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-zygote'];

export async function launchBrowser(): Promise<Browser> {
  const info = inject('browser');
  if ('error' in info) throw new Error(info.error);
  return chromium.launch({
    executablePath: info.executablePath,
    args: ARGS,
    env: { ...process.env, ...info.env } as Record<string, string>,
  });
}
