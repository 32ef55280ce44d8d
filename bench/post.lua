-- A POST batch of 5 events from a tracker, with fresh event ids.
local counter = 0
math.randomseed(os.time() + 1)
local prefix = string.format("%08x-%04x-4%03x-8%03x-", math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff))

local function event(i)
  counter = counter + 1
  return '{"e":"se","p":"web","tv":"js-3.24.0","aid":"loadtest","eid":"' .. prefix .. string.format("%012x", counter) ..
    '","se_ca":"shop","se_ac":"add-to-basket","se_la":"item ' .. i .. '","se_va":"19.99","dtm":"1767323044000","stm":"1767323044100",' ..
    '"url":"https://shop.example.com/basket","duid":"4b5c6d7e","sid":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77","vid":"3"}'
end

request = function()
  local items = {}
  for i = 1, 5 do items[i] = event(i) end
  local body = '{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[' .. table.concat(items, ",") .. ']}'
  return wrk.format("POST", "/com.snowplowanalytics.snowplow/tp2", {["Content-Type"] = "application/json; charset=utf-8", ["User-Agent"] = "Mozilla/5.0"}, body)
end
