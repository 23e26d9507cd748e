-- A sliding log of counted attempts (sign-in lockout, failed authentications), atomic for its key:
-- a sorted set of unique members scored by the time they were counted, in milliseconds.
-- KEYS[1]: the log. ARGV[1]: 'reserve' (count unless full) or 'record' (count, keep the newest max);
-- ARGV[2]: the member; ARGV[3]: max entries in a window; ARGV[4]: the window in milliseconds;
-- ARGV[5]: now in milliseconds, read from the calling node's clock.
-- Returns {1, 0} when counted, {0, milliseconds until the oldest counted entry leaves} when full.
local max = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if ARGV[1] == 'reserve' and count >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], count - max, count - max, 'WITHSCORES')
  -- A node whose clock runs behind may see entries from its future: never more than a window.
  local wait = math.min(math.max(tonumber(oldest[2]) + window - now, 1), window)
  return {0, wait}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
if count + 1 > max then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - max)
end
-- Every entry has left the window a window after the newest: nothing is kept longer.
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
