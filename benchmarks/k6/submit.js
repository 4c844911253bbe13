// Load test of the submit endpoints at a fixed arrival rate; run.sh calls it once per rate,
// rising, so each figure belongs to one rate.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e MODE=single -e RATE=2000 benchmarks/k6/submit.js
//   k6 run -e MODE=batch -e BATCH=1000 -e RATE=20 benchmarks/k6/submit.js
//
// MODE=single posts one job per request to /v1/jobs; MODE=batch posts BATCH jobs per request to
// /v1/jobs/batch. The last line printed has req/s, jobs/s and latency percentiles.
import http from "k6/http";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8080";
const MODE = __ENV.MODE || "single";
const BATCH = parseInt(__ENV.BATCH || "1000", 10);
const RATE = parseInt(__ENV.RATE || (MODE === "batch" ? "20" : "2000"), 10);
const DURATION = __ENV.DURATION || "20s";

// k6 shares the machine with the server: keep its own per-request work small (a body built
// once, no checks; a non-201 counts in http_req_failed through the response callback; only
// the tags the summary needs, and no thresholds or sub-metrics, which cost k6 ~60% more CPU
// per request). run.sh warms the server up with a separate, unreported run of this script.
export const options = {
  discardResponseBodies: true,
  systemTags: ["status", "method", "expected_response"],
  summaryTrendStats: ["avg", "min", "med", "p(90)", "p(95)", "p(99)", "max"],
  scenarios: {
    submit: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: DURATION,
      preAllocatedVUs: parseInt(__ENV.VUS || (MODE === "batch" ? "20" : "300"), 10),
      maxVUs: MODE === "batch" ? 200 : 2000,
    },
  },
};

http.setResponseCallback(http.expectedStatuses(201));

const params = {
  headers: { "Content-Type": "application/json", Authorization: `Bearer ${__ENV.TOKEN}` },
};

function job(i) {
  return { type: "bench.noop", payload: { n: i, note: "k6" }, queue: "bench" };
}

const url = MODE === "batch" ? `${BASE_URL}/v1/jobs/batch` : `${BASE_URL}/v1/jobs`;
const body = JSON.stringify(
  MODE === "batch" ? { jobs: Array.from({ length: BATCH }, (_, i) => job(i)) } : job(0),
);

export default function () {
  http.post(url, body, params);
}

export function handleSummary(data) {
  const d = data.metrics.http_req_duration.values;
  const reqs = data.metrics.http_reqs.values;
  const failed = data.metrics.http_req_failed ? data.metrics.http_req_failed.values.rate : 0;
  const dropped = data.metrics.dropped_iterations ? data.metrics.dropped_iterations.values.count : 0;
  const perReq = MODE === "batch" ? BATCH : 1;
  const line =
    `mode=${MODE} target=${RATE}/s dropped=${dropped} requests=${reqs.count} req/s=${reqs.rate.toFixed(0)} ` +
    `jobs/s=${(reqs.rate * perReq).toFixed(0)} failed=${(failed * 100).toFixed(2)}% ` +
    `p50=${d.med.toFixed(1)}ms p90=${d["p(90)"].toFixed(1)}ms p95=${d["p(95)"].toFixed(1)}ms ` +
    `p99=${d["p(99)"].toFixed(1)}ms max=${d.max.toFixed(1)}ms\n`;
  const out = { stdout: line };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}
