// When the page tries to take its session back after its WebSocket was cut. Pure: no socket,
// no timer, no clock of its own, so Node can check it as it is.
//
// A cut is a close the proxy never sent (1006: the network went, or the proxy's process did);
// any other close is the proxy's word and is final. The proxy holds a cut session for its grace
// (30 s by default, `--resume-grace`): the page tries again at 0.25, 0.5, 1 and then every 2 s,
// soon enough to lose little of a short outage, rarely enough not to hammer a proxy that is
// coming back, and stops once a try would land after the grace.

export const FIRST_RETRY_MS = 250;
export const MAX_RETRY_MS = 2000;
export const CUT_CODE = 1006;

export function isCut(code) {
  return code === CUT_CODE;
}

// The pause before try number `attempt` (0 first), or null once a try that late would find
// the session gone: `elapsedMs` since the cut, `graceMs` the proxy's.
export function nextRetryMs(attempt, elapsedMs, graceMs) {
  const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
  return elapsedMs + delay < graceMs ? delay : null;
}

// `url` with `?resume=<token>` set (the rest of its query kept).
export function resumeUrl(url, token) {
  const target = new URL(url);
  target.searchParams.set("resume", token);
  return target.toString();
}
