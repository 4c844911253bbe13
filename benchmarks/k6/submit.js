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

// Each run starts with WARMUP at the same rate (connection pools fill, VUs are allocated);
// only the `submit` scenario after it is reported.
const WARMUP = __ENV.WARMUP || "5s";
const scenario = (extra) => ({
  executor: "constant-arrival-rate",
  rate: RATE,
  timeUnit: "1s",
  preAllocatedVUs: parseInt(__ENV.VUS || (MODE === "batch" ? "20" : "300"), 10),
  maxVUs: MODE === "batch" ? 200 : 2000,
  ...extra,
});

// k6 shares the machine with the server: keep its own per-request work small (a body built
// once, no checks; a non-201 counts in http_req_failed through the response callback, and
// only the tags the summary needs).
export const options = {
  discardResponseBodies: true,
  systemTags: ["status", "method", "expected_response", "scenario"],
  summaryTrendStats: ["avg", "min", "med", "p(90)", "p(95)", "p(99)", "max"],
  scenarios: {
    warmup: scenario({ duration: WARMUP }),
    submit: scenario({ duration: DURATION, startTime: WARMUP }),
  },
  // Thresholds that always pass: they make k6 keep the `submit`-only sub-metrics.
  thresholds: {
    "http_req_duration{scenario:submit}": ["max>=0"],
    "http_reqs{scenario:submit}": ["count>=0"],
    "http_req_failed{scenario:submit}": ["rate>=0"],
    "dropped_iterations{scenario:submit}": ["count>=0"],
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
  const m = (name) => data.metrics[`${name}{scenario:submit}`];
  const d = m("http_req_duration").values;
  const reqs = m("http_reqs").values;
  const failed = m("http_req_failed") ? m("http_req_failed").values.rate : 0;
  const dropped = m("dropped_iterations") ? m("dropped_iterations").values.count : 0;
  const seconds = parseFloat(DURATION) * (DURATION.endsWith("m") ? 60 : 1);
  const perReq = MODE === "batch" ? BATCH : 1;
  const rate = reqs.count / seconds;
  const line =
    `mode=${MODE} target=${RATE}/s dropped=${dropped} requests=${reqs.count} req/s=${rate.toFixed(0)} ` +
    `jobs/s=${(rate * perReq).toFixed(0)} failed=${(failed * 100).toFixed(2)}% ` +
    `p50=${d.med.toFixed(1)}ms p90=${d["p(90)"].toFixed(1)}ms p95=${d["p(95)"].toFixed(1)}ms ` +
    `p99=${d["p(99)"].toFixed(1)}ms max=${d.max.toFixed(1)}ms\n`;
  const out = { stdout: line };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}
