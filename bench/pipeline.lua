-- wrk script for bench/run.py: sends DEPTH requests per write (HTTP/1.1 pipelining), or one
-- static request when DEPTH is 1 (used for POST, since wrk itself has no method option).
--
-- Arguments after "--" on the wrk command line, each falling back to an environment
-- variable and then to a default:
--   1 depth   PIPELINE_DEPTH  16
--   2 method  WRK_METHOD      GET
--   3 body    WRK_BODY        (none); "@FILE" sends the bytes of FILE (a 1 MiB upload
--                             does not fit in one command-line argument)
--   4 path    WRK_PATH        the path of the URL given to wrk
-- A body is sent with "Content-Type: application/json" unless a -H Content-Type header or
-- WRK_CONTENT_TYPE says otherwise. wrk counts every response as a request, so requests/s stays comparable with
-- the unpipelined runs; its latency figures are per batch (first write to last response).
--
-- Example: wrk -t1 -c64 -d10s --latency -s bench/pipeline.lua http://127.0.0.1:8000/json -- 16

local function pick(args, i, env, default)
   local v = args[i]
   if v == nil or v == "" then
      v = os.getenv(env)
   end
   if v == nil or v == "" then
      return default
   end
   return v
end

function init(args)
   local depth = tonumber(pick(args, 1, "PIPELINE_DEPTH", "16"))
   if depth == nil or depth < 1 then
      error("pipeline depth must be a positive integer")
   end
   local method = pick(args, 2, "WRK_METHOD", "GET")
   local body = pick(args, 3, "WRK_BODY", nil)
   local path = pick(args, 4, "WRK_PATH", wrk.path)

   if body ~= nil and body:sub(1, 1) == "@" then
      local f = assert(io.open(body:sub(2), "rb"))
      body = f:read("*a")
      f:close()
   end

   -- wrk.headers already holds Host (and any -H headers); its metatable folds case.
   if body ~= nil and wrk.headers["Content-Type"] == nil then
      wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
   end

   if depth == 1 then
      -- Leaving request() undefined keeps the request static: wrk formats it once.
      wrk.method = method
      wrk.path = path
      wrk.body = body
      return
   end

   local batch = {}
   for i = 1, depth do
      batch[i] = wrk.format(method, path, nil, body)
   end
   local req = table.concat(batch)
   -- Defining request() here makes wrk count the requests in the batch and expect that
   -- many responses before it writes the next batch on the connection.
   request = function()
      return req
   end
end
