/** Update objects are named by the state they produce: `updates/0000000007.tmu`. */
export const UPDATE_PREFIX = 'updates/';

export function updateName(stateId: number): string {
  return `${UPDATE_PREFIX}${String(stateId).padStart(10, '0')}.tmu`;
}

export function stateIdOf(name: string): number | undefined {
  const m = /^updates\/(\d{10})\.tmu$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
