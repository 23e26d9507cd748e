-- GET one report. wrk args: <access token> <path>
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  req = wrk.format("GET", args[2], { ["Authorization"] = "Bearer " .. args[1] })
  bad = 0
end

function request()
  return req
end

function response(status)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f non_200=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, b))
end
