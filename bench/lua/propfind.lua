-- wrk script: PROPFIND with Depth: 1 and an allprop body (RFC 4918 §9.1), as litmus,
-- Windows' WebClient and `cadaver ls` ask for a whole listing.
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "1"
wrk.headers["Content-Type"] = "application/xml; charset=utf-8"
wrk.body = '<?xml version="1.0" encoding="utf-8"?>\n' ..
           '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n'
