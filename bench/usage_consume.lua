-- POST /usage/consume {messages, 1}, round-robin over the tenants' tokens (one per line).
-- wrk args: <tokens file>
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = math.random(#tokens)
  ok, denied, other = 0, 0, 0
end

function request()
  i = i % #tokens + 1
  return wrk.format("POST", "/api/v2/usage/consume",
    { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" },
    '{"metric":"messages","quantity":1}')
end

function response(status)
  if status == 200 then ok = ok + 1 elseif status == 429 then denied = denied + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local o, d, x = 0, 0, 0
  for _, t in ipairs(threads) do o, d, x = o + t:get("ok"), d + t:get("denied"), x + t:get("other") end
  io.write(string.format("RESULT rps=%.1f p99_ms=%.2f granted=%d denied=%d other=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, o, d, x))
end
