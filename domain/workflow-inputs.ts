// The schemas of the other workflows' inputs (fineTune's is in fine-tune-request.ts). Each
// workflow checks its input with its schema before doing anything, since runs also start from
// the Temporal UI, Schedules and other SDKs; a bad input fails with InvalidRequest.
import { z } from 'zod';
import { type FineTuneInput, namespaceProblem, planDefaults } from './fine-tune-request.js';
import { parseImageReference } from './image-reference.js';
import { boolean, type Checked, checkInput, dnsLabel, number, strict, text } from './schema.js';
import { findVmSize } from './vm-sizes.js';

export const scheduleIdPattern = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;

export const gpuCheckRequestSchema = strict({
  /** Azure VM size with GPUs, e.g. Standard_NC24ads_A100_v4. */
  vmSize: text('an Azure VM size name with GPUs, e.g. Standard_NC24ads_A100_v4', { max: 64 }),
  /** Use Spot VMs (cheaper, may be evicted). Default false. */
  spot: boolean().optional(),
  /** Namespace the check Job runs in. Default "aks-finetune". */
  namespace: dnsLabel(63, 'namespace').optional(),
  /** Image that has nvidia-smi. Default NVIDIA's CUDA base image. */
  image: text('an image reference of at most 255 characters').optional(),
});
export type GpuCheckRequest = z.infer<typeof gpuCheckRequestSchema>;

export const reaperInputSchema = strict({
  /** Report what would be done, change nothing. */
  dryRun: boolean().optional(),
  /** Grace for pools without an idle-grace tag (default 5 minutes). */
  defaultGraceMinutes: number(0, 10_080).optional(),
});
export type ReaperInput = z.infer<typeof reaperInputSchema>;

export const retrainInputSchema = strict({
  /** The schedule's id: its memory of the last dataset trained on is kept under this name. */
  schedule: text("a schedule id: 1-40 lowercase letters, digits and '-'", { pattern: scheduleIdPattern, max: 40 }),
  /** The fineTune request each run starts (checked in full by validateFineTuneRequest). */
  request: z.looseObject({}, { error: 'a fineTune request object' }),
});
export interface RetrainInput {
  schedule: string;
  request: FineTuneInput;
}

export function validateGpuCheckRequest(input: unknown): Checked<GpuCheckRequest> {
  const checked = checkInput(gpuCheckRequestSchema, input, 'request');
  if (!checked.ok) return checked;
  const { vmSize, namespace, image } = checked.value;
  const problems: string[] = [];
  const size = findVmSize(vmSize);
  if (!size) problems.push(`vmSize "${vmSize}" is not a known Azure VM size`);
  else if (size.gpus === 0) problems.push(`vmSize ${size.name} has no GPUs`);
  const protectedProblem = namespaceProblem(namespace ?? planDefaults.namespace);
  if (protectedProblem) problems.push(protectedProblem);
  if (image !== undefined && !parseImageReference(image)) problems.push(`image "${image}" is not a valid image reference`);
  return problems.length ? { ok: false, problems } : checked;
}

export const validateReaperInput = (input: unknown): Checked<ReaperInput> => checkInput(reaperInputSchema, input ?? {}, 'input');
export const validateRetrainInput = (input: unknown) => checkInput(retrainInputSchema, input, 'input');
