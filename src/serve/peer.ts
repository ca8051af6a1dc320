// The prober's side of the join (diagnose/explain.ts): asks a peer's `serve`
// what its trace saw of this node's own echo requests, in batches, with a
// deadline, and turns every way it can go wrong into one state: nothing
// answered, an HTTP refusal, or an answer that is not jitterscope's.
import { EXPLAIN_MAX_SEQS, EXPLAIN_SCHEMA_ID, ExplainAnswer, PeerAnswer, readAnswer } from '../diagnose/explain';

export type { PeerAnswer };

/** Whole answers only: a peer that takes longer than this is "no-answer". */
const DEADLINE_MS = 3000;

/** Asks `base` (http://peer:9477) about echo id `id`, sequence numbers `seqs` (udp: datagrams to port `id` from source ports `seqs`). */
export async function askPeer(base: URL, id: number, seqs: number[], proto: 'icmp' | 'udp' = 'icmp', signal?: AbortSignal): Promise<PeerAnswer> {
  const out: PeerAnswer = { url: base.href, state: 'answered', node: null, detail: null, probes: [] };
  for (let i = 0; i < seqs.length; i += EXPLAIN_MAX_SEQS) {
    const batch = seqs.slice(i, i + EXPLAIN_MAX_SEQS);
    const url = new URL('explain', base.href.endsWith('/') ? base : new URL(base.href + '/'));
    url.search = new URLSearchParams({ proto, id: String(id), seq: batch.join(',') }).toString();
    let res: Response | undefined;
    let text = '';
    // a peer that says "too many" (429) is asked again a second later, twice
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt) await new Promise((r) => setTimeout(r, 1000));
      if (signal?.aborted) return { ...out, state: 'no-answer', detail: 'stopped' };
      try {
        res = await fetch(url, { signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(DEADLINE_MS)]) : AbortSignal.timeout(DEADLINE_MS) });
        text = await res.text();
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        const why = err.name === 'TimeoutError' ? `no answer in ${DEADLINE_MS / 1000} s` : (err.cause?.code ?? err.message);
        return { ...out, state: 'no-answer', detail: `${url.host}: ${why}` };
      }
      if (res.status !== 429) break;
    }
    if (!res!.ok) return { ...out, state: 'refused', detail: `HTTP ${res!.status}: ${text.trim().split('\n')[0].slice(0, 200)}` };
    let a: ExplainAnswer;
    try {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error(`not a ${EXPLAIN_SCHEMA_ID} answer (not JSON)`);
      }
      a = readAnswer(body, batch);
    } catch (e) {
      return { ...out, state: 'not-jitterscope', detail: `${(e as Error).message}: ${JSON.stringify(text.slice(0, 60))}` };
    }
    out.node = a.node;
    out.probes.push(...a.probes);
  }
  return out;
}
