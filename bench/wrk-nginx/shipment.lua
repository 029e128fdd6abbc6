-- wrk script: distinct 1.7 KB shipment events (the `shipment` profile of `waybill bench
-- ingest`: 8 order lines, a note, a ship-to address), one a request, to the `rich` source
-- of hub.toml.in with its API key. RUN (environment) keeps ids apart between runs.
local counter = 0
tid = 0
local run = os.getenv("RUN") or "r"
setup = function(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
local statuses = {"warehouse.picked","warehouse.packed","shipment.dispatched","shipment.in_transit","shipment.out_for_delivery","shipment.delivered"}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer rich-key"
request = function()
  counter = counter + 1
  local i = counter
  local s = i % 1000
  local n = math.floor(i / 1000)
  local status = statuses[(n % 6) + 1]
  local parts = {}
  for l = 0, 7 do
    parts[#parts+1] = string.format('{"line":%d,"sku":"SKU-%05d","description":"Stainless steel shelf bracket, 300 mm, pack of 4","ordered":%d,"shipped":%d,"unit":"EA","unit_price":"12.40"}', l, (s*7+l) % 100000, 4 + l % 5, 4 + l % 5)
  end
  local id = run .. "-" .. tid .. "-" .. i
  local body = string.format('{"id":"%s","shipment":"%s-S%d","status":"%s","at":"2026-11-23T%02d:%02d:%02dZ","tracking":"1Z%s%d","po":"PO-%s-%d","note":"Deliver to the loading dock at the back of the building between 07:00 and 15:00; call the warehouse office on arrival. Pallets must not exceed 1.8 m; fragile items are marked in red on the packing list.","ship_to":{"name":"Northwind Garden Supplies","street":"Industriestrasse 14","city":"Kreuzlingen","postal_code":"8280","country":"CH"},"weight":{"value":%d.5,"unit":"KG"},"lines":[%s]}',
    id, run, s, status, math.floor(n/3600) % 24, math.floor(n/60) % 60, n % 60, run, s, run, s, 12 + s % 30, table.concat(parts, ","))
  return wrk.format(nil, "/v1/ingest/rich", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer rich-key", ["Idempotency-Key"] = id}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("wrk: %d requests, %d errors (status %d, timeout %d), p99 %.2f ms\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status, summary.errors.timeout, latency:percentile(99)/1000))
end
