// The benchmark's CPU split (loadtest/cpu.ts) says which stage is the limit: a process whose writer
// thread burns 0.8 s of CPU and whose main thread burns 0.2 s must be reported that way, per event.
import { expect, test } from 'bun:test';
import { cpuNow, perCpuSecond } from '../loadtest/cpu';

// Each thread spins until its own CPU time (/proc/thread-self/stat: utime + stime, in 10 ms ticks)
// has grown by the given ticks, so the amounts hold however busy the machine is.
const TICKS = `const ticks = () => { const s = require('node:fs').readFileSync('/proc/thread-self/stat', 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return Number(f[11]) + Number(f[12]); };
const spin = (n) => { const end = ticks() + n; let x = 0; while (ticks() < end) for (let i = 0; i < 1e5; i++) x += i; return x; };`;
const CHILD = `${TICKS}
const { Worker } = require('node:worker_threads');
console.log('ready');
await new Promise((r) => process.stdin.once('data', r));
const w = new Worker(\`${TICKS}
  const { parentPort } = require('node:worker_threads');
  parentPort.on('message', () => {}); // stay alive: an exited thread's CPU leaves /proc
  parentPort.postMessage(spin(80));\`, { eval: true });
await new Promise((r) => w.once('message', r));
spin(20);
console.log('done');
await new Promise((r) => process.stdin.once('data', r));
`;

test('CPU per event is charged to the kind of thread that spent it: writer threads, main threads', async () => {
  const child = Bun.spawn([process.execPath, '-e', CHILD], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' });
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const next = async () => (await lines.read()).value ?? '';
  try {
    expect(await next()).toContain('ready');
    const before = cpuNow(child.pid, false);
    child.stdin.write('go\n');
    child.stdin.flush();
    expect(await next()).toContain('done');
    const after = cpuNow(child.pid, false);
    const split = perCpuSecond(1000, before, after).us_per_event;
    // 0.8 s over 1,000 events is 800 us each; 0.2 s is 200 us (ticks are 10 ms: some slack).
    expect(split.writer_threads!).toBeGreaterThanOrEqual(780);
    expect(split.writer_threads!).toBeLessThan(1000);
    expect(split.main_threads!).toBeGreaterThanOrEqual(180);
    expect(split.main_threads!).toBeLessThan(600);
    expect(split.database).toBeNull(); // not counted for an embedded database
  } finally {
    child.kill();
    await child.exited;
  }
});
