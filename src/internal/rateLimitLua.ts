/**
 * The rate limiter's Lua: the sliding window (internal/slidingWindow.ts) written for Redis, so that
 * every process sharing the keys decides on one timeline, the Redis server's clock. A property test
 * (test/redis.test.ts) checks that both decide alike.
 * @internal
 */
import { SERVER_NOW } from "./redisScript.js"

/**
 * The sliding window (SlidingWindow) in Lua. KEYS: 1 the log (a list of ids in start
 * order), 2 the entries (id -> "at:tokens"), 3 the state (lastAt, windowTokens, pause, seq).
 * ARGV: now (-1: the server's), tokens, rpm (-1: none), tpm (-1: none), window ms, the latest start
 * in ms from now (-1: none), the longest pause waited out in ms (-1: none), and 1 to only ask when a
 * request could start (refused as too late, recording nothing; `Window.earliest`).
 * Returns { id, at, now, refused } (refused: 0 admitted, 1 it would start too late, 2 the pause is
 * too long; a refusal records nothing). Keys expire two windows after the last admission (or after
 * the pause).
 *
 * @since 0.1.0
 * @category scripts
 */
export const ADMIT = `${SERVER_NOW}
local tokens = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local maxWait = tonumber(ARGV[6] or '-1')
local maxPause = tonumber(ARGV[7] or '-1')
local peekOnly = ARGV[8] == '1'
local state = redis.call('HMGET', KEYS[3], 'lastAt', 'windowTokens', 'pause', 'seq')
local lastAt = tonumber(state[1]) or 0
local windowTokens = tonumber(state[2]) or 0
local pause = tonumber(state[3]) or 0
local seq = tonumber(state[4]) or 0
if maxPause >= 0 and pause - now > maxPause then
  return { 0, pause, now, 2 }
end
if rpm < 0 and tpm < 0 then
  local at = math.max(now, pause)
  if peekOnly or (maxWait >= 0 and at - now > maxWait) then return { 0, at, now, 1 } end
  return { 0, at, now, 0 }
end
local count = redis.call('LLEN', KEYS[1])
-- The admissions that have left the window by t are counted past (head), dropped only on admission.
local head = 0
local headAt = nil
local headTokens = 0
local function peek()
  if head >= count then headAt = nil; return end
  local id = redis.call('LINDEX', KEYS[1], head)
  local entry = redis.call('HGET', KEYS[2], id)
  local sep = string.find(entry, ':', 1, true)
  headAt = tonumber(string.sub(entry, 1, sep - 1))
  headTokens = tonumber(string.sub(entry, sep + 1))
end
local function expire(t)
  peek()
  while headAt ~= nil and headAt + window <= t do
    windowTokens = windowTokens - headTokens
    head = head + 1
    peek()
  end
end
local t = math.max(now, lastAt, pause)
expire(t)
while rpm >= 0 and count - head >= rpm do
  t = math.max(t, headAt + window)
  expire(t)
end
while tpm >= 0 and count - head > 0 and windowTokens + tokens > tpm do
  t = math.max(t, headAt + window)
  expire(t)
end
if peekOnly or (maxWait >= 0 and t - now > maxWait) then
  return { 0, t, now, 1 }
end
for i = 1, head do
  local id = redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], id)
end
seq = seq + 1
redis.call('RPUSH', KEYS[1], seq)
redis.call('HSET', KEYS[2], seq, t .. ':' .. tokens)
windowTokens = windowTokens + tokens
redis.call('HSET', KEYS[3], 'lastAt', t, 'windowTokens', windowTokens, 'seq', seq)
local ttl = math.max(t, pause) - now + 2 * window
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return { seq, t, now, 0 }
`

/**
 * Corrects an admission's tokens while it is in the window. ARGV: id, at, tokens.
 *
 * @since 0.1.0
 * @category scripts
 */
export const SETTLE = `
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return 0 end
local sep = string.find(entry, ':', 1, true)
local at = string.sub(entry, 1, sep - 1)
if at ~= ARGV[2] then return 0 end
local old = tonumber(string.sub(entry, sep + 1))
local tokens = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], at .. ':' .. tokens)
redis.call('HINCRBY', KEYS[3], 'windowTokens', tokens - old)
return 1
`

/**
 * Extends the shared pause. ARGV: now (-1: the server's), millis, window ms. Returns the pause's end.
 *
 * @since 0.1.0
 * @category scripts
 */
export const PAUSE = `${SERVER_NOW}
local untilAt = now + tonumber(ARGV[2])
local pause = tonumber(redis.call('HGET', KEYS[3], 'pause') or '0')
if untilAt > pause then
  pause = untilAt
  redis.call('HSET', KEYS[3], 'pause', pause)
  local ttl = pause - now + 2 * tonumber(ARGV[3])
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
end
return pause
`

/**
 * What is left of the pause, in ms. ARGV: now (-1: the server's).
 *
 * @since 0.1.0
 * @category scripts
 */
export const PAUSE_LEFT = `${SERVER_NOW}
local pause = tonumber(redis.call('HGET', KEYS[3], 'pause') or '0')
return math.max(0, pause - now)
`
