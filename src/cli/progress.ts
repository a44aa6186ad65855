/**
 * Progress of the compile passes on a terminal: a full-mk2 compile takes tens
 * of seconds. Nothing is drawn when stdout is not a TTY or with --json, so
 * piped output and JSON stay clean; the bar goes to stderr (cli-progress's
 * default) and is cleared when the compile ends.
 */
import cliProgress from 'cli-progress';

export interface CompileProgress {
  onProgress?: (pass: string, done: number, total: number) => void;
  stop(): void;
}

export function compileProgress(enabled: boolean): CompileProgress {
  if (!enabled) return { stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { format: 'compiling: {pass} {bar} {value}/{total}', clearOnComplete: true, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onProgress: (pass, done, total) => {
      if (!started) {
        bar.start(total, done, { pass });
        started = true;
        return;
      }
      if (bar.getTotal() !== total) bar.setTotal(total);
      bar.update(done, { pass });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

/** A bar over a sweep's points, on a terminal only (as the compile bar). */
export function countProgress(enabled: boolean, label: string, total: number): { tick(): void; stop(): void } {
  if (!enabled) return { tick: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ format: `${label} {bar} {value}/{total} {eta_formatted}`, clearOnComplete: true, hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(total, 0);
  return { tick: () => bar.increment(), stop: () => bar.stop() };
}
