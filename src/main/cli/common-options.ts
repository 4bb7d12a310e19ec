/** What the device and folder commands read and print alike: numbers, a state to restore, a verify report. */
import { TidemarkError } from '../../shared/errors.js';
import type { VerifyReport } from '../../shared/states.js';
import type { StateSelector } from '../engine/restore.js';
import { formatBytes } from './format-human.js';

type Out = (line: string) => unknown;

export function integer(value: unknown, flag: string): number {
  if (typeof value !== 'string' || !/^\d+$/.test(value))
    throw new TidemarkError('usage', `${flag} needs a whole number`);
  return Number(value);
}

/** `--state K` or `--at ISO_TIME` (exactly one), and `--to PATH`, of a restore. */
export function restoreTarget(values: Record<string, unknown>): {
  selector: StateSelector;
  to: string;
} {
  if ((values.state === undefined) === (values.at === undefined))
    throw new TidemarkError('usage', 'restore needs exactly one of --state K or --at ISO_TIME');
  if (typeof values.to !== 'string') throw new TidemarkError('usage', 'restore needs --to PATH');
  if (values.state !== undefined)
    return { selector: { stateId: integer(values.state, '--state') }, to: values.to };
  const at = new Date(values.at as string);
  if (Number.isNaN(at.getTime()))
    throw new TidemarkError('usage', `--at needs an ISO 8601 time, got ${String(values.at)}`);
  return { selector: { at }, to: values.to };
}

/** Prints a verify report (one line per problem) and returns the exit code: 1 if damaged. */
export function printVerifyReport(report: VerifyReport, json: boolean, out: Out): number {
  if (json) out(JSON.stringify(report));
  else {
    out(
      `${report.ok ? 'ok' : 'DAMAGED'}: ${report.updatesChecked} updates, ${report.blocksChecked} blocks (${formatBytes(report.bytesChecked)}) checked${report.deep ? `, ${report.statesChecked} state hashes recomputed` : ''}`,
    );
    for (const p of report.problems)
      out(`${p.file}: ${p.message}; affects states ${p.states.join(', ') || 'none'}`);
  }
  if (report.ok) return 0;
  const first = report.problems[0];
  process.stderr.write(
    `tidemark: the archive is damaged: ${first?.file}: ${first?.message} (states ${first?.states.join(', ')})\n`,
  );
  return 1;
}
