// push.js: pushes resc-go events to Redis with k6's built-in Redis module
// and measures push -> task visible latency and throughput.
//
// Events are "acq/<seq>/<unix nanos>", seq numbering the pushes of the test
// from 0 (k6's iterationInTest), the form the load generator's rule turns
// into the task "trt/<seq>/<unix nanos>". An observer VU takes each task
// with BLMOVE from the task queue to a "seen" list (as a worker would take
// it, but keeping it), and records the time since its event was pushed.
// k6's clock in scripts is Date.now(): latencies have a 1 ms resolution.
//
// Run it through the generator (`resc-load --mode k6`), which starts Redis
// and the replicas, runs k6, then checks that every event pushed produced
// its task exactly once; or by hand against a running resc-go, see
// docs/loadtest.md. Environment (k6 -e NAME=value):
//
//   REDIS_URL  redis://127.0.0.1:6379/0
//   INPUT      the input queue events are pushed to
//   TASKS      the task queue the rule pushes to
//   SEEN       where the observer moves the tasks it saw (TASKS/seen)
//   RATE       events/s (constant-arrival-rate); 0: EVENTS as fast as
//              10 VUs can push them (shared-iterations)
//   DURATION   how long to push at RATE (10s)
//   EVENTS     how many to push when RATE is 0 (10000)
//   VUS        producer VUs (rate: the most, 200; else 10)
//   OBSERVE    0 to push only, with no observer

import redis from 'k6/experimental/redis';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

const url = __ENV.REDIS_URL || 'redis://127.0.0.1:6379/0';
const input = __ENV.INPUT || 'lt/k6/in';
const tasks = __ENV.TASKS || 'lt/k6/tasks';
const seen = __ENV.SEEN || `${tasks}/seen`;
const rate = Number(__ENV.RATE || 0);
const duration = __ENV.DURATION || '10s';
const events = Number(__ENV.EVENTS || 10000);
const observe = (__ENV.OBSERVE || '1') !== '0';
const expected = rate > 0 ? Math.floor(rate * parseSeconds(duration)) : events;

const client = new redis.Client(url);
const pushed = new Counter('events_pushed');
const tasksSeen = new Counter('tasks_seen');
const latency = new Trend('e2e_latency', true);

function parseSeconds(d) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`DURATION ${d}: want e.g. 500ms, 10s or 2m`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]];
}

const scenarios = {
  producer: rate > 0
    ? {
        executor: 'constant-arrival-rate', exec: 'push', rate, timeUnit: '1s', duration,
        preAllocatedVUs: 20, maxVUs: Number(__ENV.VUS || 200),
      }
    : { executor: 'shared-iterations', exec: 'push', vus: Number(__ENV.VUS || 10), iterations: events, maxDuration: '30m' },
};
if (observe) {
  scenarios.observer = { executor: 'per-vu-iterations', exec: 'watch', vus: 1, iterations: 1, maxDuration: '30m' };
}

export const options = {
  scenarios,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
};

export async function push() {
  const seq = exec.scenario.iterationInTest;
  await client.lpush(input, `acq/${seq}/${Date.now()}000000`);
  pushed.add(1);
}

// more moves up to ARGV[1] tasks from KEYS[1] to KEYS[2] in one step and
// returns them: the observer takes a backlog in one round trip, so that it
// keeps up and measures the system rather than its own lag.
const more = `local out = {}
for i = 1, tonumber(ARGV[1]) do
  local task = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not task then break end
  out[i] = task
end
return out`;

function record(task, now) {
  const stamp = Number(String(task).split('/')[2]) / 1e6;
  latency.add(now - stamp);
  tasksSeen.add(1);
}

// watch takes tasks until it has seen every event expected, or none came
// for 3 s: it waits for one with BLMOVE (1 s at most), then takes those
// behind it with the script.
export async function watch() {
  let n = 0;
  let idle = 0;
  while (n < expected && idle < 3) {
    let task = null;
    try {
      task = await client.sendCommand('BLMOVE', tasks, seen, 'RIGHT', 'LEFT', 1);
    } catch (e) {
      // The module rejects a nil reply (the 1 s timeout) with "redis: nil".
      if (!String(e).includes('redis: nil')) throw e;
    }
    if (task === null || task === undefined) {
      idle++;
      continue;
    }
    idle = 0;
    record(task, Date.now());
    const behind = await client.sendCommand('EVAL', more, 2, tasks, seen, 999);
    const now = Date.now();
    for (const t of behind || []) {
      record(t, now);
    }
    n += 1 + (behind || []).length;
  }
}
