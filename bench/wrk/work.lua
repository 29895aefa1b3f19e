-- bench/wrk/work.lua: a node's loop for Debian's wrk, an independent generator against
-- tessera-server (bench/wrk.py sets it up). One node token per wrk thread, one connection per
-- thread (wrk -t N -c N), so each connection is one node. Loop: fetch max_units B; then each
-- report carries the reported units and, with REPORT_FETCH=1, the next fetch (one request per
-- batch), else a separate fetch follows. The results are not computed (wrk cannot run the
-- kernel): each unit reports hits = count * pi/4 rounded down, a value the kernel may give, so
-- the server's work per unit is that of a real node; the job's answer is not exact.
local tokens, next_id = {}, 1
local batch = tonumber(os.getenv("WRK_BATCH") or "1")
local combine = os.getenv("REPORT_FETCH") == "1"

function setup(thread)
  if #tokens == 0 then
    for line in io.lines(os.getenv("WRK_TOKENS")) do tokens[#tokens + 1] = line end
  end
  thread:set("token", tokens[next_id])
  thread:set("id", next_id)
  next_id = next_id + 1
end

local pending = nil -- the report body to send next, if any
local fetch_body = string.format('{"max_units":%d}', batch)

function request()
  local headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  if pending then
    local b = pending
    pending = nil
    return wrk.format("POST", "/api/v1/work/report", headers, b)
  end
  return wrk.format("POST", "/api/v1/work/fetch", headers, fetch_body)
end

function response(status, headers, body)
  if status ~= 200 then return end
  local items = {}
  -- Units as the server writes them: "id" then, later in the object, "count".
  for id, count in string.gmatch(body, '"id":%s*(%d+).-"count":%s*(%d+)') do
    items[#items + 1] = string.format('{"unit_id":%s,"result":{"hits":%d},"wall_s":0.001}', id,
                                      math.floor(tonumber(count) * 0.7853981))
  end
  if #items > 0 then
    pending = '{"results":[' .. table.concat(items, ",") .. ']' ..
              (combine and (',"fetch":' .. fetch_body) or '') .. '}'
  end
end
