import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import Database from 'better-sqlite3';

const WRITER = path.resolve(import.meta.dirname, 'sqlite-writer.mjs');

/** Starts the WAL writer; resolves once it has created the database. */
export async function startSqliteWriter(
  db: string,
  burstMs: number,
  pauseMs: number,
  rowBytes = 300,
): Promise<ChildProcess> {
  const args = [WRITER, db, String(burstMs), String(pauseMs), String(rowBytes)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`sqlite writer exited ${code}`)));
  });
  return child;
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** PRAGMA integrity_check of a restored database, and how many rows it holds. */
export function checkDatabase(file: string): { integrity: string; rows: number } {
  const db = new Database(file);
  try {
    const integrity = (db.pragma('integrity_check', { simple: true }) as string) ?? '';
    const rows = (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
    return { integrity, rows };
  } finally {
    db.close();
  }
}
