-- wrk script fragment: print one machine-readable line at the end:
-- RESULT requests seconds p50 p99 p99.9 non-2xx errors (times in ms).
-- When every thread of a token row ran out (tokens.lua), the row lasted
-- from the first start to the last thread's end, not wrk's full duration.
local function seconds(summary)
  local first, last = nil, nil
  for _, thread in ipairs(threads or {}) do
    local started, ran_out = thread:get("started_us"), thread:get("ran_out_us")
    if not ran_out then
      return summary.duration / 1e6
    end
    first = math.min(first or started, started)
    last = math.max(last or ran_out, ran_out)
  end
  if not first then
    return summary.duration / 1e6
  end
  return (last - first) / 1e6
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %.3f %.3f %.3f %.3f %d %d\n",
    summary.requests, seconds(summary),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    non2xx, errors))
end
