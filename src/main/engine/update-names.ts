/**
 * Update objects are named by the state they produce: `updates/0000000007.tmu`. An update that
 * replaces the updates of states 3..7 (a collapse by retention) is named by its state and the
 * first state it covers: `updates/0000000007-0000000003.tmu` (docs/FORMAT.md, "Retention").
 */
export const UPDATE_PREFIX = 'updates/';

const NAME = /^updates\/(\d{10})(?:-(\d{10}))?\.tmu$/;

export function updateName(stateId: number): string {
  return `${UPDATE_PREFIX}${String(stateId).padStart(10, '0')}.tmu`;
}

/** Name of an update producing `stateId` that replaces the updates of states `from`..`stateId`. */
export function collapsedUpdateName(stateId: number, from: number): string {
  if (from === stateId) return updateName(stateId);
  return `${UPDATE_PREFIX}${String(stateId).padStart(10, '0')}-${String(from).padStart(10, '0')}.tmu`;
}

export function stateIdOf(name: string): number | undefined {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The first state whose update `name` covers (its own state for an update never collapsed). */
export function coveredFrom(name: string): number | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return m[2] === undefined ? Number(m[1]) : Number(m[2]);
}

/**
 * Splits update names into the live ones (oldest first) and those superseded by a collapse whose
 * result is committed: an update is superseded when another one covers a range of states that
 * contains its own. Collapses only ever merge whole neighbouring ranges, so ranges either nest or
 * are disjoint. A crash between committing a collapse and deleting what it replaced leaves both;
 * the live set is then already the collapsed one.
 */
export function partitionUpdates(names: string[]): { live: string[]; superseded: string[] } {
  const ranges = names
    .map((name) => ({ name, to: stateIdOf(name), from: coveredFrom(name) }))
    .filter((r): r is { name: string; to: number; from: number } => r.to !== undefined)
    .sort((a, b) => a.from - b.from || b.to - a.to);
  const live: string[] = [];
  const superseded: string[] = [];
  let reach = -1;
  for (const r of ranges) {
    if (r.to <= reach) superseded.push(r.name);
    else {
      live.push(r.name);
      reach = r.to;
    }
  }
  live.sort((a, b) => (stateIdOf(a) as number) - (stateIdOf(b) as number));
  return { live, superseded };
}
