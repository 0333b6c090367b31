-- wrk script: cycle through WRK_PATHS with WRK_HEADERS, and count answers by status.
local paths, headers = {}, {}
for line in string.gmatch(os.getenv("WRK_PATHS") or "/", "[^\n]+") do
  table.insert(paths, line)
end
for line in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then headers[name] = value end
end

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

counter = 0
statuses = {}
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], headers)
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, n in pairs(counts) do
      total[tostring(status)] = (total[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format('"%s": %d', status, n))
  end
  io.write("STATUS {" .. table.concat(parts, ", ") .. "}\n")
end
