/**
 * The shared budget's Lua (Budget.layerRedis): reservations with leases, settlements once per id, and
 * the record's epoch that tells a lost record from a live one.
 * @internal
 */
import { SERVER_NOW } from "./redisScript.js"

/**
 * The budget's record: KEYS 1 totals (spent, reserved, epoch), 2 leases (zset id -> expiry), 3
 * amounts (id -> micro-dollars held, or "-" once settled). Ids are chosen by the processes (unique
 * per process and call), so that a command whose answer was lost can be settled or cancelled by id,
 * and a settlement written twice counts once. `epoch` is set when the record is created: a process
 * remembers it, and a record without it (FLUSHALL, a restart without persistence, eviction) or with
 * another one, or whose spend is below what the process itself wrote, has been lost.
 *
 * INIT: ARGV a new epoch (used if the record has none). Returns { epoch, spent, reserved }.
 *
 * @since 0.2.0
 * @category scripts
 */
export const INIT_BUDGET = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- A new record: leases left by one that was lost would give back what it no longer holds.
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local totals = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
return { epoch, tonumber(totals[1]) or 0, tonumber(totals[2]) or 0 }
`

/**
 * Budget reservation. ARGV: now (-1: the server's), amount, limit, lease ms, id, epoch, floor (the
 * spend this process has written). Leases past their expiry (a process that died holding them) are
 * given back first. Returns { status, spent, reserved }: 1 reserved, 0 refused (over the limit),
 * -1 the record was lost (nothing written), -2 the id was already settled or cancelled.
 *
 * @since 0.1.0
 * @category scripts
 */
export const RESERVE = `${SERVER_NOW}
local totals = redis.call('HMGET', KEYS[1], 'epoch', 'spent', 'reserved')
local spent = tonumber(totals[2]) or 0
if totals[1] ~= ARGV[6] or spent < tonumber(ARGV[7]) then return { -1, spent, tonumber(totals[3]) or 0 } end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  local held = tonumber(redis.call('HGET', KEYS[3], id)) or 0
  if held > 0 then redis.call('HINCRBY', KEYS[1], 'reserved', -held) end
  redis.call('HDEL', KEYS[3], id)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return { -2, spent, reserved } end
local amount = tonumber(ARGV[2])
if spent + reserved + amount > tonumber(ARGV[3]) then return { 0, spent, reserved } end
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
redis.call('HSET', KEYS[3], ARGV[5], amount)
return { 1, spent, reserved + amount }
`

/**
 * Budget settlement: the reservation (if still held) is given back and the actual cost spent, once
 * per id; the id is then marked settled for a lease, so that a repeat (its first answer was lost)
 * counts nothing and a reservation under it that arrives late is refused (a cancellation is a
 * settlement of 0). ARGV: now (-1: the server's), id, actual, lease ms, epoch, floor.
 * Returns { status (1 done, -1 the record was lost: nothing written), spent, reserved }.
 *
 * @since 0.1.0
 * @category scripts
 */
export const SETTLE_BUDGET = `${SERVER_NOW}
local totals = redis.call('HMGET', KEYS[1], 'epoch', 'spent')
if totals[1] ~= ARGV[5] or (tonumber(totals[2]) or 0) < tonumber(ARGV[6]) then return { -1, 0, 0 } end
local id = ARGV[2]
local held = redis.call('HGET', KEYS[3], id)
if held ~= '-' then
  local amount = tonumber(held) or 0
  if amount > 0 then redis.call('HINCRBY', KEYS[1], 'reserved', -amount) end
  redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[3]))
  redis.call('HSET', KEYS[3], id, '-')
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
end
local after = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
return { 1, tonumber(after[1]) or 0, tonumber(after[2]) or 0 }
`

/**
 * After a loss: adds what this process committed to the record there is now (creating it, marked
 * `rebuilt`, when there is none), so that a process started later does not begin from zero.
 * ARGV: a new epoch, micro-dollars. Returns the record's epoch.
 *
 * @since 0.2.0
 * @category scripts
 */
export const REBUILD_BUDGET = `
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'rebuilt', '1')
end
redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[2]))
return redis.call('HGET', KEYS[1], 'epoch')
`
