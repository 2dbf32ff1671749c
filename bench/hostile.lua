-- A hostile mix: valid, expired, unknown-kid and malformed tokens, and
-- made-up methods on made-up paths. Tokens come from env: VALID, EXPIRED, UNKNOWN.
local valid, expired, unknown = os.getenv("VALID"), os.getenv("EXPIRED"), os.getenv("UNKNOWN")
local counter = 0

request = function()
  counter = counter + 1
  local pick = counter % 5
  if pick == 0 then
    return wrk.format("GET", "/users/me", { ["Authorization"] = "Bearer " .. valid })
  elseif pick == 1 then
    return wrk.format("GET", "/users/me", { ["Authorization"] = "Bearer " .. expired })
  elseif pick == 2 then
    return wrk.format("GET", "/users/me", { ["Authorization"] = "Bearer " .. unknown })
  elseif pick == 3 then
    local garbage = "Bearer " .. string.rep("x", counter % 64) .. "." .. counter .. ".!"
    return wrk.format("GET", "/users/me", { ["Authorization"] = garbage })
  else
    -- A method and a path never seen before, each time.
    local method = "M" .. counter .. string.rep("Q", 512)
    return wrk.format(method, "/made-up/" .. counter)
  end
end
