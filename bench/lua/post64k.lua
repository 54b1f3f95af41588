-- wrk script: every request is a POST with a 64 KiB body (scenario "upload").
wrk.method = "POST"
wrk.body = string.rep("x", 65535) .. "\n"
wrk.headers["Content-Type"] = "application/octet-stream"
