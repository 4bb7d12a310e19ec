// Numbers for people: "1.2 GB", "3 min ago", "≈ 2 min left".
import { duration } from '../../shared/human-time';

export { ago, duration } from '../../shared/human-time';

export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let value = n;
  let unit = -1;
  do {
    value /= 1000;
    unit++;
  } while (value >= 1000 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function dateTime(iso: string): string {
  return new Date(iso).toLocaleString([], {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

export function eta(seconds: number | null): string {
  return seconds === null ? 'estimating…' : `≈ ${duration(seconds)} left`;
}

export function percent(done: number, total: number): number {
  return total === 0 ? 0 : Math.floor((done * 100) / total);
}
