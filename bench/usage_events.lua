-- POST /usage/events with batches of 1000 events, every id new.
-- wrk args: <access token> <run prefix>
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token, prefix = args[1], args[2]
  n, bad = 0, 0
  headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

function request()
  n = n + 1
  local parts = {}
  for i = 1, 1000 do
    parts[i] = string.format('{"id":"%s-%d-%d-%d","metric":"messages","quantity":1,"session_id":"wa-%d"}',
      prefix, tid, n, i, i % 10)
  end
  return wrk.format("POST", "/api/v2/usage/events", headers, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function response(status)
  if status ~= 202 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("RESULT rps=%.1f p99_ms=%.2f non_202=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, b))
end
