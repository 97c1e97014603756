-- wrk script for drover's soak test (tests/soak/soak.py).
--
-- Checks every response: the body must be exactly "Hello, world!\n" and an
-- X-Generation header must be present. Counts per thread (each wrk thread
-- has its own Lua state); done() adds the threads up and prints lines that
-- soak.py parses:
--   SOAK responses N
--   SOAK wrong_body N
--   SOAK no_generation N
--   SOAK gen G N          (N responses carried X-Generation: G)

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   responses = 0
   wrong_body = 0
   no_generation = 0
   gens = {}
end

function response(status, headers, body)
   responses = responses + 1
   if body ~= "Hello, world!\n" then
      wrong_body = wrong_body + 1
   end
   local g = headers["X-Generation"]
   if g == nil then
      no_generation = no_generation + 1
   else
      gens[g] = (gens[g] or 0) + 1
   end
end

function done(summary, latency, requests)
   local r, w, n, all = 0, 0, 0, {}
   for _, t in ipairs(threads) do
      r = r + t:get("responses")
      w = w + t:get("wrong_body")
      n = n + t:get("no_generation")
      for g, c in pairs(t:get("gens")) do
         all[g] = (all[g] or 0) + c
      end
   end
   io.write(string.format("SOAK responses %d\n", r))
   io.write(string.format("SOAK wrong_body %d\n", w))
   io.write(string.format("SOAK no_generation %d\n", n))
   for g, c in pairs(all) do
      io.write(string.format("SOAK gen %s %d\n", g, c))
   end
end
