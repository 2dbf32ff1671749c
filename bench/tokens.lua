-- wrk script: each request sends the next line of TOKENS_FILE as its token
-- (a line "=" sends REPEATED_TOKEN). A thread stops when its share runs
-- out, or starts over when TOKENS_CYCLE=1. With DPOP_TOKEN set, the lines
-- are DPoP proofs sent with that token instead.
--
-- wrk times a row by its full duration even when every thread stopped
-- early, so each thread notes when it started and when it ran out, and
-- report.lua divides by that span instead.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *tp);
]]

function monotonic_us()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local tokens = {}
threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = os.getenv("TOKENS_FILE")
  local count = tonumber(os.getenv("WRK_THREADS") or "1")
  local repeated = os.getenv("REPEATED_TOKEN")
  local i = 0
  for line in io.lines(file) do
    if i % count == id then
      table.insert(tokens, line == "=" and repeated or line)
    end
    i = i + 1
  end
  index = 0
  dpop = os.getenv("DPOP_TOKEN")
  cycle = os.getenv("TOKENS_CYCLE") == "1"
  started_us = monotonic_us()
end

function request()
  index = index + 1
  if index > #tokens then
    if cycle then
      index = 1
    else
      if not ran_out_us then
        ran_out_us = monotonic_us()
      end
      wrk.thread:stop()
      index = #tokens
    end
  end
  if dpop then
    return wrk.format("GET", wrk.path, { ["Authorization"] = "DPoP " .. dpop, ["DPoP"] = tokens[index] })
  end
  return wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. tokens[index] })
end
