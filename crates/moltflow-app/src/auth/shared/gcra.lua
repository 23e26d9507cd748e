-- One GCRA step, atomic for its key (the same arithmetic as the per-node `governor` limiter, so a
-- node answers the same whether it counts alone or with the others).
-- KEYS[1]: the theoretical arrival time (TAT) of the key, in microseconds.
-- ARGV[1]: emission interval T in microseconds (period / limit); ARGV[2]: the limit (burst);
-- ARGV[3]: now in milliseconds, read from the calling node's clock.
-- Returns {1, remaining} when the request is counted, {0, wait in microseconds} when it is not.
local t = tonumber(ARGV[1])
local tau = t * (tonumber(ARGV[2]) - 1)
local now = tonumber(ARGV[3]) * 1000
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if now < tat - tau then
  return {0, math.ceil(tat - tau - now)}
end
local next_tat = math.max(tat, now) + t
-- Past next_tat the key would read as "full allowance", the same as a missing key: let it expire.
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, math.floor(math.min(now + tau + t - next_tat, tau + t) / t)}
