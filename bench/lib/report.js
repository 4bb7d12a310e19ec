// Formatting: decimal units (MB = 10^6 bytes, as dd prints them) and markdown tables.

export const MB = 1e6;

export function mb(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return '';
  if (Math.abs(bytes) >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (Math.abs(bytes) >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (Math.abs(bytes) >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

export function secs(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '';
  return s < 10 ? s.toFixed(2) : s.toFixed(1);
}

export function rate(bytes, s) {
  if (!s || bytes === null || bytes === undefined) return '';
  return (bytes / s / MB).toFixed(0);
}

export function ratio(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '';
  return `${x.toFixed(2)}×`;
}

export function met(ok) {
  if (ok === null || ok === undefined) return '';
  return ok ? 'yes' : '**NO**';
}

export function table(headers, rows) {
  // Rows may leave their trailing cells out: they print empty.
  const cells = [headers, ...rows].map((r) =>
    Array.from({ length: Math.max(headers.length, r.length) }, (_, i) => String(r[i] ?? '')),
  );
  const widths = headers.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [
    line(cells[0]),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...cells.slice(1).map(line),
  ].join('\n');
}
