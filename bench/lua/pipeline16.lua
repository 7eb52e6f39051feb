-- wrk script: 16 GET /index.html requests pipelined per write.
-- wrk counts every response, so Requests/sec is responses per second.
init = function(args)
  local r = {}
  for i = 1, 16 do
    r[i] = wrk.format(nil, "/index.html")
  end
  req = table.concat(r)
end

request = function()
  return req
end
