-- wrk script: GET /me with the benchmark user's access token.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS")
