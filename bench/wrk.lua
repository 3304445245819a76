-- wrk script of the benchmark: POSTs a JSON body (the file BENCH_BODY_FILE, else
-- {"name":"bench"}) and prints one machine-readable line with what `wrk --latency` omits
-- (p99.9) and what the driver needs (requests, errors), latencies in microseconds.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"bench"}'

local path = os.getenv("BENCH_BODY_FILE")
if path and path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
end

-- BENCH_TENANTS=N: every request names one of N tenants (X-Amz-Tenant-Id), round-robin.
local tenants = tonumber(os.getenv("BENCH_TENANTS") or "")
if tenants and tenants > 0 then
  local n = 0
  function request()
    n = n + 1
    local headers = { ["Content-Type"] = "application/json",
                      ["X-Amz-Tenant-Id"] = "tenant-" .. (n % tenants) }
    return wrk.format("POST", "/", headers, wrk.body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
