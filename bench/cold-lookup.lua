-- wrk script of figure 4's cold lookups: each request names a random existing
-- filler session (selector "b<20 digits>A", 1..BENCH_SELECTORS) with a wrong
-- verifier, so the server never finds it in its cache, reads the record
-- through the selector index, and answers 401. done() prints the same line
-- as session.lua (non2xx counts the expected 401s).
local n = tonumber(os.getenv("BENCH_SELECTORS") or "1000")
local verifier = string.rep("A", 43)

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Authorization"] = string.format("Bearer lws_b%020dA.%s", math.random(1, n), verifier)
  return wrk.format(nil, nil, h)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "wrk_result rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d errors=%d non2xx=%d\n",
    summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status))
end
