// What the fine-tune benchmarks (bench.ts, bench-scale.ts) read off the machine and the stack:
// a process's CPU and memory from /proc, the stack's own CPU, and the lines the API server's
// audit log and the registry's access log gained since a mark.
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { StackConfig } from './stack/config.js';

/** Bytes appended to a log since `offset`, as lines. */
export function linesSince(file: string, offset: number): string[] {
  const size = statSync(file).size;
  if (size <= offset) return [];
  const fd = openSync(file, 'r');
  const buffer = Buffer.alloc(size - offset);
  readSync(fd, buffer, 0, buffer.length, offset);
  closeSync(fd);
  return buffer.toString('utf8').split('\n').filter(Boolean);
}
export const sizeOf = (file: string) => statSync(file).size;

/** CPU seconds (user + system, all threads), resident and peak resident memory of a process. */
export function processUsage(pid: number): { cpuSeconds: number; rssMiB: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? '0');
  return { cpuSeconds: ticks / 100, rssMiB: Math.round(kB('VmRSS') / 1024), peakRssMiB: Math.round(kB('VmHWM') / 1024) };
}

/** CPU seconds of the stack's own processes (pid files in .stack/pids), the stand-ins included. */
export function stackCpuSeconds(stack: Pick<StackConfig, 'pidsDir'>): number {
  let total = 0;
  for (const file of readdirSync(stack.pidsDir).filter((f) => f.endsWith('.pid'))) {
    const pid = Number(readFileSync(join(stack.pidsDir, file), 'utf8').trim());
    try {
      total += processUsage(pid).cpuSeconds;
    } catch {
      // a component that is not running has no CPU to count
    }
  }
  return total;
}

/** Registry API requests among access-log lines. */
export const registryRequests = (lines: string[]) => lines.filter((l) => /"(GET|HEAD|PUT|POST|PATCH|DELETE) \/v2\//.test(l)).length;

/** Milliseconds between two ISO times; 0 when either is missing. */
export const span = (from?: string, to?: string) => (from && to ? Date.parse(to) - Date.parse(from) : 0);

export const sleepMs = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
