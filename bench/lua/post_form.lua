-- wrk script: POST a urlencoded form to /database.txt (the server assigns ids).
wrk.method = "POST"
wrk.path = "/database.txt"
wrk.body = "name=Bench+User&email=bench%40example.com"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
