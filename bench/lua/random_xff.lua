-- wrk script for bench/routing_cost.py: every request carries an
-- X-Forwarded-For address drawn uniformly at random from a file, and
-- optionally a fixed Cookie header.
--
--   wrk -t1 -c50 -d10s -s bench/lua/random_xff.lua URL -- ADDRESS_FILE [COOKIE]
--
-- ADDRESS_FILE holds one address per line (IPv4 or IPv6 text). COOKIE, when
-- given, is sent as is as the value of a Cookie header on every request.
-- Either may instead come from the environment variables RANDOM_XFF_FILE
-- and RANDOM_XFF_COOKIE (for callers that must put the URL last).
-- Each wrk thread reads the file in init() and seeds its own generator, so
-- threads draw different sequences.

local addrs = {}
local count = 0
local cookie = nil
local seeded = 0

function init(args)
   local path = args[1] or os.getenv("RANDOM_XFF_FILE")
   if path == nil or #path == 0 then
      error("usage: wrk ... -s random_xff.lua URL -- ADDRESS_FILE [COOKIE]")
   end
   for line in io.lines(path) do
      if #line > 0 then
         count = count + 1
         addrs[count] = line
      end
   end
   if count == 0 then
      error("no addresses in " .. path)
   end
   local c = args[2] or os.getenv("RANDOM_XFF_COOKIE")
   if c ~= nil and #c > 0 then
      cookie = c
   end
   seeded = seeded + 1
   math.randomseed(os.time() + seeded * 7919)
end

function request()
   local headers = {["X-Forwarded-For"] = addrs[math.random(count)]}
   if cookie ~= nil then
      headers["Cookie"] = cookie
   end
   return wrk.format(nil, nil, headers)
end
