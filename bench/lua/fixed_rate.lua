-- wrk script for scenario "latency": a fixed mean request rate instead of
-- "as fast as possible".
--
--   wrk -t1 -c100 -d10s --latency -s bench/lua/fixed_rate.lua URL -- RATE CONNECTIONS
--
-- RATE is the target total request rate (req/s) and CONNECTIONS must equal
-- wrk's -c (wrk does not expose -c to scripts). Both may instead come from
-- the environment variables FIXED_RATE_RPS and FIXED_RATE_CONNECTIONS.
--
-- Pacing: before each request, wrk calls delay() and waits that many ms
-- before sending it. Every connection waits an exponentially distributed gap
-- (a Poisson arrival process per connection) with mean
-- 1000 * CONNECTIONS / RATE ms, so the connections together send RATE req/s.
-- The first gap is drawn the same way, so the connections start spread out.
-- wrk truncates delay() to whole ms; stochastic rounding (round up with
-- probability equal to the fractional part) keeps the mean gap exact.
--
-- Limitation: this is closed-loop per connection. The gap starts when the
-- previous response has arrived, so a slow response delays that
-- connection's next request instead of letting requests queue up
-- (coordinated omission). Tail latencies are therefore under-reported, and
-- the achieved rate is slightly below RATE (by the mean latency and timer
-- slack per gap). Keep RATE well below the server's maximum.
--
-- done() prints one parseable line (times in microseconds):
--   FIXED_RATE requests=N duration_us=D mean_us=.. p50_us=.. p75_us=.. p90_us=..
--     p99_us=.. p999_us=.. max_us=.. connect=.. read=.. write=.. status=.. timeout=..

local mean_gap_ms = nil
local threads_set_up = 0

function setup(thread)
    -- Runs in the main Lua state, once per thread: number the threads so
    -- each gets its own random seed (identical gap sequences would line up).
    threads_set_up = threads_set_up + 1
    thread:set("fixed_rate_thread", threads_set_up)
end

function init(args)
    -- args[0] is the URL; args[1], args[2] are what follows `--`.
    local rate = tonumber(args[1]) or tonumber(os.getenv("FIXED_RATE_RPS") or "")
    local conns = tonumber(args[2]) or tonumber(os.getenv("FIXED_RATE_CONNECTIONS") or "")
    if not rate or rate <= 0 or not conns or conns < 1 then
        error("fixed_rate.lua needs RATE and CONNECTIONS: wrk ... URL -- RATE CONNECTIONS")
    end
    mean_gap_ms = 1000.0 * conns / rate
    math.randomseed(os.time() * 1000 + (fixed_rate_thread or 0))
    -- LuaJIT's first draws after seeding are poorly mixed; discard a few.
    for _ = 1, 10 do
        math.random()
    end
end

function delay()
    -- Exponential gap: -mean * ln(U), U uniform in (0, 1].
    local gap = -mean_gap_ms * math.log(1.0 - math.random())
    local whole = math.floor(gap)
    if math.random() < gap - whole then
        whole = whole + 1
    end
    return whole
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "FIXED_RATE requests=%d duration_us=%d mean_us=%.1f p50_us=%d p75_us=%d p90_us=%d "
            .. "p99_us=%d p999_us=%d max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, latency.mean,
        latency:percentile(50), latency:percentile(75), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout
    ))
end
