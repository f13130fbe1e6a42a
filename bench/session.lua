-- wrk script of the session-check benchmarks: every request carries the same
-- header (BENCH_HDR_NAME: BENCH_HDR_VALUE from the environment, e.g.
-- "Authorization: Bearer lws_…" or "Cookie: connect.sid=…"), and done() prints
-- one machine-readable line with the rate, the latency percentiles and the
-- error counts (non-2xx/3xx answers count as errors.status).
local name = os.getenv("BENCH_HDR_NAME")
local value = os.getenv("BENCH_HDR_VALUE")
if name and name ~= "" then
  wrk.headers[name] = value
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
