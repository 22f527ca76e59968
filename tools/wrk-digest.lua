-- wrk script: POST a fresh random 32-byte digest per request to /digest and count non-200 answers.
--
--   wrk -t2 -c256 -d10s -s tools/wrk-digest.lua http://127.0.0.1:14788
--
-- wrk does not verify answers; otsd-loadgen does. Each wrk thread has its own Lua state, so the
-- counts are gathered from all threads in done().

local DIGEST_LEN = 32

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   -- Seed each thread differently, so threads do not send the same digests.
   math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)
   non200 = 0
   statuses = {}
   encoded_statuses = ""
   wrk.method = "POST"
   wrk.path = "/digest"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["Accept"] = "application/vnd.opentimestamps.v1"
end

local bytes = {}
local unpack = table.unpack or unpack -- wrk runs LuaJIT (Lua 5.1)

function request()
   for i = 1, DIGEST_LEN do
      bytes[i] = math.random(0, 255)
   end
   return wrk.format(nil, nil, nil, string.char(unpack(bytes, 1, DIGEST_LEN)))
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      statuses[status] = (statuses[status] or 0) + 1
      local parts = {}
      for code, n in pairs(statuses) do
         table.insert(parts, code .. "=" .. n)
      end
      encoded_statuses = table.concat(parts, ",")
   end
end

function done(summary, latency, requests)
   local total = 0
   local by_status = {}
   for _, thread in ipairs(threads) do
      total = total + (thread:get("non200") or 0)
      -- Tables cannot cross Lua states; each thread's counts come back as "code=n,code=n".
      local encoded = thread:get("encoded_statuses") or ""
      for code, n in encoded:gmatch("(%d+)=(%d+)") do
         by_status[code] = (by_status[code] or 0) + tonumber(n)
      end
   end
   local parts = {}
   for code, n in pairs(by_status) do
      table.insert(parts, code .. "=" .. n)
   end
   table.sort(parts)
   local seconds = summary.duration / 1e6
   local ok = summary.requests - total
   io.write(string.format("non-200 responses: %d%s\n", total,
      #parts > 0 and (" (" .. table.concat(parts, " ") .. ")") or ""))
   io.write(string.format("socket errors: connect %d read %d write %d timeout %d\n",
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
   io.write(string.format("summary mode=wrk requests=%d ok=%d rate=%.0f p50_us=%d p99_us=%d " ..
      "max_us=%d non200=%d errors=%d\n",
      summary.requests, ok, ok / seconds, latency:percentile(50), latency:percentile(99),
      latency.max, total,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
