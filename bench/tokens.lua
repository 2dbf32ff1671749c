-- wrk script: each request sends the next token of TOKENS_FILE. A thread
-- stops when its share runs out, or starts over when TOKENS_CYCLE=1. With
-- DPOP_TOKEN set, the lines are DPoP proofs sent with that token instead.
local tokens = {}
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = os.getenv("TOKENS_FILE")
  local count = tonumber(os.getenv("WRK_THREADS") or "1")
  local i = 0
  for line in io.lines(file) do
    if i % count == id then
      table.insert(tokens, line)
    end
    i = i + 1
  end
  index = 0
  dpop = os.getenv("DPOP_TOKEN")
end

function request()
  index = index + 1
  if index > #tokens then
    if os.getenv("TOKENS_CYCLE") == "1" then
      index = 1
    else
      wrk.thread:stop()
      index = #tokens
    end
  end
  if dpop then
    return wrk.format("GET", wrk.path, { ["Authorization"] = "DPoP " .. dpop, ["DPoP"] = tokens[index] })
  end
  return wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. tokens[index] })
end
