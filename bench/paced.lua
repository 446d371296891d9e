-- wrk script: each connection waits a fixed time after every answer before it sends its next
-- request, so the offered load stays well below what any proxy here can serve and the
-- latencies are the proxy's own, not a queue's.
--   wrk -s bench/paced.lua URL -- MS
-- The -H headers stay (no request() of its own).

local pause = 10

function init(args)
  pause = tonumber(args[1]) or pause
end

function delay()
  return pause
end
