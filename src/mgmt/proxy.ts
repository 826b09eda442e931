/**
 * The MDM routes the dashboard may call through MGMT (`/api/mdm/<MDM path>`),
 * and nothing else: reads for the pages, and the changes the pages offer.
 */
export const PROXIED: ReadonlyArray<readonly [method: string, path: RegExp]> = [
  ['GET', /^\/(health|stats|rebuild|rebuild\/jobs|audit|alerts|volumes|sds|sdcs|storage-pools|protection-domains|fault-sets|discovery\/topology|volume-deletions|volume-trims|layer-deletions)$/],
  ['GET', /^\/(alerts|volumes|sds|sdcs|storage-pools)\/\d+$/],
  ['POST', /^\/volumes$/],
  ['POST', /^\/volumes\/\d+\/(resize|mappings)$/],
  ['DELETE', /^\/volumes\/\d+$/],
  ['DELETE', /^\/volumes\/\d+\/mappings\/\d+$/],
  ['POST', /^\/alerts\/\d+\/resolve$/],
];

export function isProxied(method: string, path: string): boolean {
  return PROXIED.some(([m, re]) => m === method && re.test(path));
}
