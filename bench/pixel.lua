-- A page view from a browser tracker, with a fresh event id per request.
local counter = 0
math.randomseed(os.time())
local prefix = string.format("%08x-%04x-4%03x-8%03x-", math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff))

request = function()
  counter = counter + 1
  local eid = prefix .. string.format("%012x", counter)
  local path = "/i?e=pv&p=web&tv=js-3.24.0&tna=sp&aid=loadtest&eid=" .. eid ..
    "&url=https%3A%2F%2Fshop.example.com%2Fproducts%2Fshoes%3Fcolor%3Dred&page=Red%20shoes" ..
    "&refr=https%3A%2F%2Fsearch.example.org%2F%3Fq%3Dshoes&res=1920x1080&vp=1200x800&cd=24" ..
    "&tz=Europe%2FLondon&lang=en-GB&cs=UTF-8&cookie=1&duid=4b5c6d7e&vid=3" ..
    "&sid=0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77&dtm=1767323044000&stm=1767323044100"
  return wrk.format("GET", path, {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", ["Cookie"] = "sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11"})
end
