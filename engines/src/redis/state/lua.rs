//! The state store's own Lua scripts (the media, notification and key
//! scripts live beside their reads): each write that must be atomic is
//! one script.

/// Applies ops (ARGV from 6 on, 5 values each) after an optional job-offset
/// compare-and-set. ARGV[1] prefix, ARGV[2] job ('' = none), ARGV[3]
/// partition, ARGV[4] next offset, ARGV[5] the expected stored offset
/// ('' = none). Returns -1 when written, -2 when stale with no stored
/// offset, else the stored offset.
pub(super) const APPLY: &str = r#"
local p, job, part = ARGV[1], ARGV[2], ARGV[3]
if job ~= '' then
  local jk = p .. ':j:' .. job
  local cur = redis.call('HGET', jk, part)
  if (cur or '') ~= ARGV[5] then return cur and tonumber(cur) or -2 end
  redis.call('HSET', jk, part, ARGV[4])
end
local function smax(k, f, v)
  local c = redis.call('HGET', k, f)
  if (not c) or c < v then redis.call('HSET', k, f, v) end
end
local function nmax(k, f, v)
  local c = tonumber(redis.call('HGET', k, f) or '0')
  if c < tonumber(v) then redis.call('HSET', k, f, v) end
end
-- An item for a deleted account is not kept: nobody can read it, and
-- nothing would delete it.
local function erased(user)
  return redis.call('HGET', p .. ':a:' .. user, 'hash') == '__ERASED__'
end
local i = 6
while i <= #ARGV do
  local op, a, b, c, d = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  if op == 'M' then -- conversation, user, status, up_to
    local k = p .. ':m:' .. a
    smax(k, b .. ':d', d)
    if c == 'r' then smax(k, b .. ':r', d) end
  elseif op == 'P' then -- user, online, last_seen or '', at
    local k = p .. ':u:' .. a
    redis.call('HSET', k, 'on', b, 'upd', d)
    if c ~= '' then nmax(k, 'seen', c) end
  elseif op == 'I' then -- user, seq, conversation, msg_id, item
    if not erased(a) then
      local k = p .. ':u:' .. a
      nmax(k, 'seq', b)
      smax(k, 'head:' .. c, d)
      redis.call('ZADD', p .. ':in:' .. a, b, string.format('%020d', tonumber(b)) .. ARGV[i+5])
    end
    i = i + 1
  elseif op == 'R' then -- user, last seq, conversation, last msg_id; then first seq ++ run
    if not erased(a) then
      local k, m = p .. ':u:' .. a, ARGV[i+5]
      nmax(k, 'seq', b)
      smax(k, 'head:' .. c, d)
      redis.call('ZADD', p .. ':in:' .. a, tonumber(string.sub(m, 1, 20)), m)
    end
    i = i + 1
  elseif op == 'Q' then -- group, msg_id, message: kept if there (a redaction too)
    local z = p .. ':gp:' .. a
    if redis.call('ZLEXCOUNT', z, '[' .. b, '(' .. b .. '\255') == 0 then
      redis.call('ZADD', z, 0, b .. c)
    end
  elseif op == 'r' then -- user, seq, item: an item's content blanked
    local z, m = p .. ':in:' .. a, string.format('%020d', tonumber(b)) .. c
    local old = redis.call('ZRANGEBYSCORE', z, b, b)
    if #old == 1 and old[1] ~= m and string.byte(old[1], 21) == string.byte(m, 21) then
      redis.call('ZREM', z, old[1])
      redis.call('ZADD', z, b, m)
    end
  elseif op == 'g' then -- group, msg_id, message: a post's content blanked
    local z = p .. ':gp:' .. a
    local old = redis.call('ZRANGEBYLEX', z, '[' .. b, '(' .. b .. '\255')
    if #old > 0 then
      for _, o in ipairs(old) do redis.call('ZREM', z, o) end
      redis.call('ZADD', z, 0, b .. c)
    end
  elseif op == 'D' then -- user, client_msg_id, 'msg_id conversation', expires_at ms
    local ms = tonumber(redis.call('TIME')[1]) * 1000
    if tonumber(d) > ms then
      redis.call('SET', p .. ':i:' .. a .. ':' .. b, c, 'NX', 'PXAT', d)
    end
  elseif op == 'L' then -- user, at
    nmax(p .. ':u:' .. a, 'seen', b)
  elseif op == 'A' then -- user, username, hash, display
    if redis.call('EXISTS', p .. ':a:' .. a) == 0 then
      redis.call('HSET', p .. ':a:' .. a, 'name', b, 'hash', c, 'display', d)
      redis.call('SET', p .. ':n:' .. b, a, 'NX')
    end
    nmax(p .. ':ctr', 'user', a)
  elseif op == 'V' then -- user, device
    nmax(p .. ':u:' .. a, 'dev', b)
  elseif op == 'S' then -- user, device, session (encoded: its order is the string order)
    smax(p .. ':ds:' .. a, b, c)
    nmax(p .. ':u:' .. a, 'dev', b)
  elseif op == 'F' then -- user, display, about, avatar; NUL = unchanged
    local k = p .. ':a:' .. a
    if redis.call('EXISTS', k) == 1 then
      if b ~= '\0' then redis.call('HSET', k, 'display', b) end
      if c ~= '\0' then redis.call('HSET', k, 'about', c) end
      if d ~= '\0' then redis.call('HSET', k, 'avatar', d) end
    end
  elseif op == 'G' then -- group, state
    redis.call('SET', p .. ':g:' .. a, b)
  elseif op == 'C' then -- user, contact, '1' added / '0' removed
    if c == '1' then
      redis.call('SADD', p .. ':c:' .. a, b)
      redis.call('SADD', p .. ':w:' .. b, a)
    else
      redis.call('SREM', p .. ':c:' .. a, b)
      redis.call('SREM', p .. ':w:' .. b, a)
    end
  elseif op == 'B' then -- user, other, '1' blocks / '0' no longer
    if c == '1' then
      redis.call('SADD', p .. ':bl:' .. a, b)
    else
      redis.call('SREM', p .. ':bl:' .. a, b)
    end
  elseif op == 'H' then -- conversation, msg_id, index entry, expires_at ms
    local ms = tonumber(redis.call('TIME')[1]) * 1000
    if tonumber(d) > ms then
      redis.call('SET', p .. ':mi:' .. a .. ':' .. b, c, 'NX', 'PXAT', d)
    end
  elseif op == 'J' then -- conversation, msg_id: deleted for everyone
    local k = p .. ':mi:' .. a .. ':' .. b
    local v = redis.call('GET', k)
    if v and string.sub(v, -2) ~= ':x' then redis.call('SET', k, v .. ':x', 'KEEPTTL') end
  elseif op == 'Y' then -- user, audience code
    redis.call('HSET', p .. ':u:' .. a, 'priv', b)
  elseif op == 'O' then -- user: the account deleted
    -- The rest goes even where the account is not (yet) there: a store
    -- rebuilt from a compacted log meets the deletion before the
    -- account's tombstone restores it.
    local k = p .. ':a:' .. a
    if redis.call('EXISTS', k) == 1 then
      redis.call('HSET', k, 'hash', b, 'display', c)
      redis.call('HDEL', k, 'about', 'avatar')
    end
    do
      for _, o in ipairs(redis.call('SMEMBERS', p .. ':c:' .. a)) do
        redis.call('SREM', p .. ':w:' .. o, a)
      end
      redis.call('DEL', p .. ':c:' .. a, p .. ':bl:' .. a, p .. ':in:' .. a)
      -- Cursors, inbox heads and the read marks of the conversations
      -- the heads name (a mark is only set where an item came); `seq`
      -- stays, so a seq is never handed out twice.
      local u = p .. ':u:' .. a
      for _, f in ipairs(redis.call('HKEYS', u)) do
        if string.sub(f, 1, 5) == 'head:' then
          redis.call('HDEL', p .. ':m:' .. string.sub(f, 6), a .. ':d', a .. ':r')
          redis.call('HDEL', u, f)
        elseif string.sub(f, 1, 4) == 'cur:' then
          redis.call('HDEL', u, f)
        end
      end
      redis.call('HDEL', u, 'priv', 'on', 'seen', 'upd', 'ntf')
    end
  elseif op == 'T' then -- user, group, '1' member / '0' no longer
    if c == '1' then
      redis.call('SADD', p .. ':ug:' .. a, b)
    else
      redis.call('SREM', p .. ':ug:' .. a, b)
    end
  __MEDIA__
  __NOTIFY__
  end
  i = i + 5
end
return -1
"#;

pub(super) const CREATE_ACCOUNT: &str = r#"
local p = ARGV[1]
if redis.call('EXISTS', p .. ':n:' .. ARGV[2]) == 1 then return 0 end
local id = redis.call('HINCRBY', p .. ':ctr', 'user', 1)
redis.call('SET', p .. ':n:' .. ARGV[2], id)
redis.call('HSET', p .. ':a:' .. id, 'name', ARGV[2], 'hash', ARGV[3], 'display', ARGV[4])
return id
"#;

/// KEYS[1] the user's device sessions; ARGV: device, expected ('' =
/// none), next. 1 when written.
pub(super) const SWAP_SESSION: &str = r#"
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"#;

/// KEYS: the user's hash, their account; ARGV: `cur:{device}`, seq,
/// [`ERASED`](crate::state::ERASED). A deleted account keeps no cursor
/// (a socket's last confirmation can come after the deletion).
pub(super) const CURSOR_MAX: &str = r#"
if redis.call('HGET', KEYS[2], 'hash') == ARGV[3] then return 0 end
local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if c < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"#;
