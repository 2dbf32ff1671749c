-- wrk script fragment: GET /users?limit=50&offset=K, K drawn from 0 to 950
-- for each request: about a thousand early pages, ten times what the page
-- cache holds, so most pages are read from the database (their count comes
-- from the cache).
local threads_set = 0

function setup(thread)
  threads_set = threads_set + 1
  thread:set("seed", threads_set)
end

function init()
  math.randomseed(wrk.thread:get("seed"))
end

function request()
  return wrk.format(nil, wrk.path .. "&offset=" .. math.random(0, 950))
end
