// Writes a SQLite database (WAL mode) continuously until killed: transactions of inserts and
// updates every few milliseconds, with a pause of `pauseMs` every `burstMs` (0: back to back,
// never a pause).
// Usage: node sqlite-writer.mjs <db-file> <burstMs> <pauseMs> [rowBytes]
import Database from 'better-sqlite3';

const [file, burstMs = '1000', pauseMs = '400', rowBytes = '300'] = process.argv.slice(2);
const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB, n INTEGER)');
db.exec('CREATE INDEX IF NOT EXISTS t_n ON t(n)');
const insert = db.prepare('INSERT INTO t (v, n) VALUES (?, ?)');
const update = db.prepare('UPDATE t SET v = ?, n = n + 1 WHERE id = ?');
const tx = db.transaction((k) => {
  for (let i = 0; i < 20; i++) insert.run(Buffer.alloc(Number(rowBytes), k + i), k);
  for (let i = 0; i < 5; i++) update.run(Buffer.alloc(200, i), 1 + ((k * 7 + i) % (k * 20 + 1)));
});
let k = 0;
let burstStart = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
process.stdout.write('ready\n');
for (;;) {
  tx(k++);
  if (Number(burstMs) === 0) {
    // Never quiet: transactions back to back, yielding only so that a kill gets through.
    await new Promise((r) => setImmediate(r));
  } else if (Date.now() - burstStart > Number(burstMs)) {
    await sleep(Number(pauseMs));
    burstStart = Date.now();
  } else await sleep(k % 3);
}
