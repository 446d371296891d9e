-- wrk script: every request takes the next line of a header file (bench/header-file.ts: one
-- request per line, `Name: value` fields separated by a tab), cycling; the -H headers stay.
--   wrk -s bench/header-cycle.lua URL -- FILE
-- The requests are formatted once, in init(), before wrk starts its clock; request() only
-- hands out the next prepared string. At the end it prints `header-cycle: sent S of N`
-- (S > N means lines were sent more than once). The bench runs wrk with one thread: each
-- thread would cycle through the same lines.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Globals, so that done() can read them through thread:get().
prepared = {}
lines = 0
sent = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if line:find(":", 1, true) then
      local headers = {}
      for name, value in pairs(wrk.headers) do
        headers[name] = value
      end
      for field in line:gmatch("[^\t]+") do
        local name, value = field:match("^%s*([^:]-)%s*:%s*(.-)%s*$")
        if name then
          headers[name] = value
        end
      end
      lines = lines + 1
      prepared[lines] = wrk.format(nil, wrk.path, headers)
    end
  end
  file:close()
  assert(lines > 0, "header-cycle: no header lines in " .. args[1])
end

function request()
  sent = sent + 1
  return prepared[(sent - 1) % lines + 1]
end

function done(summary, latency, requests)
  local total, of = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("sent")
    of = of + thread:get("lines")
  end
  io.write(string.format("header-cycle: sent %d of %d\n", total, of))
end
