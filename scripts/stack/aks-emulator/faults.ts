// Failure injection, set through the emulator's control API so tests can make ARM misbehave
// the ways it does in production: quota and capacity errors, throttling, server errors.
import { ArmError } from './arm-error.js';

export type FaultKind = 'quota' | 'capacity' | 'throttle' | 'server-error';

export interface Fault {
  kind: FaultKind;
  /** How many matching requests it applies to. */
  times: number;
  /** Only requests with this method (e.g. PUT); all when absent. */
  method?: string;
  /** Only requests about this agent pool; all when absent. */
  pool?: string;
  /** For throttle: the Retry-After the 429 carries. */
  retryAfterSeconds?: number;
}

const kinds: FaultKind[] = ['quota', 'capacity', 'throttle', 'server-error'];

export function parseFault(body: unknown): Fault {
  const f = body as Partial<Fault> | undefined;
  if (!f || !kinds.includes(f.kind as FaultKind)) throw new ArmError(400, 'InvalidFault', `kind must be one of ${kinds.join(', ')}`);
  const times = f.times ?? 1;
  if (!Number.isInteger(times) || times < 1) throw new ArmError(400, 'InvalidFault', 'times must be a positive integer');
  return { kind: f.kind as FaultKind, times, method: f.method?.toUpperCase(), pool: f.pool, retryAfterSeconds: f.retryAfterSeconds ?? 1 };
}

/** Capacity errors surface in the operation, not the response: ARM accepted the request. */
export const capacityError = {
  code: 'AllocationFailed',
  message:
    'Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance',
};

export class Faults {
  private faults: Fault[] = [];

  add(fault: Fault): void {
    this.faults.push(fault);
  }

  clear(): void {
    this.faults = [];
  }

  list(): Fault[] {
    return this.faults;
  }

  /** Takes one use of the first fault matching this request, if any. */
  take(method: string, pool: string | undefined, kindsWanted: FaultKind[]): Fault | undefined {
    const fault = this.faults.find(
      (f) =>
        kindsWanted.includes(f.kind) &&
        (f.method === undefined || f.method === method) &&
        (f.pool === undefined || f.pool === pool),
    );
    if (!fault) return undefined;
    fault.times -= 1;
    if (fault.times === 0) this.faults = this.faults.filter((f) => f !== fault);
    return fault;
  }

  /** The synchronous error a fault turns a request into. */
  static responseError(fault: Fault, vmSize: string | undefined): ArmError {
    switch (fault.kind) {
      case 'quota':
        return new ArmError(
          400,
          'QuotaExceeded',
          `Operation could not be completed as it results in exceeding approved ${vmSize ?? 'VM family'} Cores quota. Submit a request for Quota increase at https://aka.ms/ProdportalCRP.`,
        );
      case 'throttle':
        return new ArmError(
          429,
          'TooManyRequests',
          'The request is being throttled as the limit has been reached for operation type - Write.',
          { 'retry-after': String(fault.retryAfterSeconds ?? 1) },
        );
      default:
        return new ArmError(500, 'InternalServerError', 'An internal server error occurred. Please retry the request.');
    }
  }
}
