-- wrk script for the HTTP benchmark: optionally turns the requests into POSTs with a body read from a file,
-- and at the end prints one JSON line (prefixed WRK_JSON) with the counts and latency percentiles in µs.
local method = os.getenv("WRK_METHOD")
if method == "POST" then
  local path = os.getenv("WRK_BODY_FILE")
  local file = assert(io.open(path, "rb"), "cannot open WRK_BODY_FILE " .. tostring(path))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"min":%d,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
