// Failure injection, set through the emulator's control API so tests can make ARM misbehave
// the ways it does in production: quota and capacity errors, sizes not offered, throttling,
// server errors, operations preempted by another operation, and spot evictions.
import { ArmError } from './arm-error.js';
import type { OperationError } from './agent-pools.js';

export type FaultKind = 'quota' | 'capacity' | 'preemption' | 'sku-not-available' | 'throttle' | 'server-error' | 'spot-eviction';

export interface Fault {
  kind: FaultKind;
  /** How many matching requests it applies to. */
  times: number;
  /** Only requests with this method (e.g. PUT); all when absent. */
  method?: string;
  /** Only requests about this agent pool; all when absent (spot-eviction: required). */
  pool?: string;
  /** For throttle: the Retry-After the 429 carries (AKS asks for up to 60 s). */
  retryAfterSeconds?: number;
  /** For capacity: the allocation error Compute reported, which AKS wraps. */
  subcode?: 'ZonalAllocationFailed' | 'AllocationFailed';
  /** For spot-eviction: how many of the pool's nodes Azure evicts (default 1). */
  nodes?: number;
}

const kinds: FaultKind[] = ['quota', 'capacity', 'preemption', 'sku-not-available', 'throttle', 'server-error', 'spot-eviction'];
const maxRetryAfterSeconds = 60;

export function parseFault(body: unknown): Fault {
  const f = body as Partial<Fault> | undefined;
  if (!f || !kinds.includes(f.kind as FaultKind)) throw new ArmError(400, 'InvalidFault', `kind must be one of ${kinds.join(', ')}`);
  const times = f.times ?? 1;
  if (!Number.isInteger(times) || times < 1) throw new ArmError(400, 'InvalidFault', 'times must be a positive integer');
  const retryAfterSeconds = f.retryAfterSeconds ?? 1;
  if (!(retryAfterSeconds >= 0 && retryAfterSeconds <= maxRetryAfterSeconds)) {
    throw new ArmError(400, 'InvalidFault', `retryAfterSeconds must be from 0 to ${maxRetryAfterSeconds}, as AKS asks`);
  }
  if (f.subcode !== undefined && f.subcode !== 'ZonalAllocationFailed' && f.subcode !== 'AllocationFailed') {
    throw new ArmError(400, 'InvalidFault', 'subcode must be ZonalAllocationFailed or AllocationFailed');
  }
  if (f.kind === 'spot-eviction' && !f.pool) throw new ArmError(400, 'InvalidFault', 'spot-eviction needs a pool');
  return {
    kind: f.kind as FaultKind,
    times,
    method: f.method?.toUpperCase(),
    pool: f.pool,
    retryAfterSeconds,
    subcode: f.subcode ?? 'ZonalAllocationFailed',
    nodes: f.nodes ?? 1,
  };
}

/**
 * Capacity errors surface in the operation, not the response: ARM accepted the request, and
 * the scale set could not get VMs. AKS wraps Compute's error (ZonalAllocationFailed,
 * AllocationFailed: https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/zonalallocationfailed-allocationfailed-error)
 * in its own code, with Compute's code in the message and in details; the SDK surfaces the
 * code and the message.
 */
export function capacityError(subcode: NonNullable<Fault['subcode']>): OperationError {
  const computeMessage =
    subcode === 'ZonalAllocationFailed'
      ? 'Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance'
      : 'Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance';
  return {
    code: 'ReconcileVMSSAgentPoolFailed',
    message: `Code="${subcode}" Message="${computeMessage}"`,
    details: [{ code: subcode, message: computeMessage }],
  };
}

/**
 * An operation that ARM accepted and another operation on the pool then preempted (e.g. one an
 * operator or Azure started meanwhile): it fails with AKSOperationPreempted, whose message names
 * the newer operation
 * (https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/error-codes/aksoperationpreempted-error).
 * The pool keeps what the preempting operation made of it; the caller may try again.
 */
export function preemptedError(preemptingOperationId: string): OperationError {
  return { code: 'AKSOperationPreempted', message: `This operation has been preempted by another operation with ID ${preemptingOperationId}` };
}

/** The error an operation accepted under an operation fault finishes with. */
export function operationFaultError(fault: Fault, preemptingOperationId: string): OperationError {
  return fault.kind === 'preemption' ? preemptedError(preemptingOperationId) : capacityError(fault.subcode!);
}

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
  static responseError(fault: Fault, vmSize: string | undefined, location: string): ArmError {
    switch (fault.kind) {
      case 'quota':
        return new ArmError(
          400,
          'QuotaExceeded',
          `Operation could not be completed as it results in exceeding approved ${vmSize ?? 'VM family'} Cores quota. Submit a request for Quota increase at https://aka.ms/ProdportalCRP.`,
        );
      case 'sku-not-available':
        // A size the region does not offer to this subscription is refused before anything starts.
        return new ArmError(
          400,
          'VMSizeNotSupported',
          `The VM size of ${vmSize ?? 'the agent pool'} is not allowed in your subscription in location '${location}'. Run 'az vm list-skus -l ${location}' for the sizes offered there.`,
        );
      case 'throttle':
        // AKS throttles with 429, code Throttled, and a Retry-After of up to 60 s
        // (https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/create-upgrade-delete/429-too-many-requests-errors).
        return new ArmError(
          429,
          'Throttled',
          `The request is being throttled. Please retry after ${fault.retryAfterSeconds ?? 1} seconds.`,
          { 'retry-after': String(fault.retryAfterSeconds ?? 1) },
        );
      default:
        return new ArmError(500, 'InternalServerError', 'An internal server error occurred. Please retry the request.');
    }
  }
}
