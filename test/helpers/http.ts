/** One HTTP call with a JSON answer, for tests that talk to the MDM without the typed client. */
// `any`: tests probe arbitrary answer shapes, including error bodies.
export async function fetchJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(url, init);
  return { status: r.status, body: await r.json() };
}
