-- Generic wrk script for requests with a body (used by bench/run.sh).
--
-- wrk itself only sends GETs without a body from the command line, so the
-- method, body and content type come from the environment here. Extra headers
-- (e.g. Authorization) still come from wrk's own -H flags, which wrk puts into
-- wrk.headers before this file runs.
--
--   WRK_METHOD        default POST
--   WRK_BODY          request body (sent verbatim, same for every request)
--   WRK_CONTENT_TYPE  default application/json
--
-- Scenarios that need a different body per request (unique idempotency ids,
-- usage event batches) should get their own script with a request() function.

wrk.method = os.getenv("WRK_METHOD") or "POST"
wrk.body = os.getenv("WRK_BODY") or ""
if wrk.body ~= "" then
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
end
