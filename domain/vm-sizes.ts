// Azure VM sizes the product knows: what a node of each size offers. Used to validate runs
// (does the model fit?), to request all of a node's GPUs, and by the AKS emulator to give
// the nodes it creates the capacity a real node of that size reports. Pure data: safe to
// import from workflow code.

export interface VmSize {
  name: string;
  /**
   * The vCPU quota family (Compute usages API `name.value`, the Resource SKUs API's `family`):
   * a pool of this size needs vCpus × count free in it, and in the region's total ("cores"; Spot:
   * the regional "lowPriorityCores" instead, https://learn.microsoft.com/azure/virtual-machines/spot-vms#quota).
   */
  family: string;
  vCpus: number;
  memoryGiB: number;
  gpus: number;
  /** GPU model, memory per GPU, and whether it computes in bfloat16; absent for CPU-only sizes. */
  gpu?: { model: string; memoryGiB: number; bf16: boolean };
  /** The day Azure retired the size (its VMs deallocated, no new ones), and the notice. */
  retired?: { on: string; notice: string };
}

/** https://learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement: NC A100 v4 is the recommended replacement. */
const ncv3Retired = { on: '2025-09-30', notice: 'learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement' };

const sizes: VmSize[] = [
  // CPU-only sizes (system pools, inference of tiny models).
  { name: 'Standard_D4s_v3', family: 'standardDSv3Family', vCpus: 4, memoryGiB: 16, gpus: 0 },
  { name: 'Standard_D8s_v5', family: 'standardDSv5Family', vCpus: 8, memoryGiB: 32, gpus: 0 },
  // NVIDIA T4 (16 GiB).
  { name: 'Standard_NC4as_T4_v3', family: 'standardNCASv3_T4Family', vCpus: 4, memoryGiB: 28, gpus: 1, gpu: { model: 'T4', memoryGiB: 16, bf16: false } },
  { name: 'Standard_NC8as_T4_v3', family: 'standardNCASv3_T4Family', vCpus: 8, memoryGiB: 56, gpus: 1, gpu: { model: 'T4', memoryGiB: 16, bf16: false } },
  { name: 'Standard_NC16as_T4_v3', family: 'standardNCASv3_T4Family', vCpus: 16, memoryGiB: 110, gpus: 1, gpu: { model: 'T4', memoryGiB: 16, bf16: false } },
  { name: 'Standard_NC64as_T4_v3', family: 'standardNCASv3_T4Family', vCpus: 64, memoryGiB: 440, gpus: 4, gpu: { model: 'T4', memoryGiB: 16, bf16: false } },
  // NVIDIA V100 (16 GiB).
  { name: 'Standard_NC6s_v3', family: 'standardNCSv3Family', vCpus: 6, memoryGiB: 112, gpus: 1, gpu: { model: 'V100', memoryGiB: 16, bf16: false }, retired: ncv3Retired },
  { name: 'Standard_NC12s_v3', family: 'standardNCSv3Family', vCpus: 12, memoryGiB: 224, gpus: 2, gpu: { model: 'V100', memoryGiB: 16, bf16: false }, retired: ncv3Retired },
  { name: 'Standard_NC24s_v3', family: 'standardNCSv3Family', vCpus: 24, memoryGiB: 448, gpus: 4, gpu: { model: 'V100', memoryGiB: 16, bf16: false }, retired: ncv3Retired },
  // NVIDIA A10 (24 GiB).
  { name: 'Standard_NV36ads_A10_v5', family: 'StandardNVADSA10v5Family', vCpus: 36, memoryGiB: 440, gpus: 1, gpu: { model: 'A10', memoryGiB: 24, bf16: true } },
  // NVIDIA A100.
  { name: 'Standard_NC24ads_A100_v4', family: 'standardNCADSA100v4Family', vCpus: 24, memoryGiB: 220, gpus: 1, gpu: { model: 'A100', memoryGiB: 80, bf16: true } },
  { name: 'Standard_NC48ads_A100_v4', family: 'standardNCADSA100v4Family', vCpus: 48, memoryGiB: 440, gpus: 2, gpu: { model: 'A100', memoryGiB: 80, bf16: true } },
  { name: 'Standard_NC96ads_A100_v4', family: 'standardNCADSA100v4Family', vCpus: 96, memoryGiB: 880, gpus: 4, gpu: { model: 'A100', memoryGiB: 80, bf16: true } },
  { name: 'Standard_ND96asr_v4', family: 'standardNDASv4_A100Family', vCpus: 96, memoryGiB: 900, gpus: 8, gpu: { model: 'A100', memoryGiB: 40, bf16: true } },
  { name: 'Standard_ND96amsr_A100_v4', family: 'StandardNDAMSv4_A100Family', vCpus: 96, memoryGiB: 1900, gpus: 8, gpu: { model: 'A100', memoryGiB: 80, bf16: true } },
  // NVIDIA H100.
  { name: 'Standard_NC40ads_H100_v5', family: 'standardNCadsH100v5Family', vCpus: 40, memoryGiB: 320, gpus: 1, gpu: { model: 'H100 NVL', memoryGiB: 94, bf16: true } },
  { name: 'Standard_NC80adis_H100_v5', family: 'standardNCadsH100v5Family', vCpus: 80, memoryGiB: 640, gpus: 2, gpu: { model: 'H100 NVL', memoryGiB: 94, bf16: true } },
  { name: 'Standard_ND96isr_H100_v5', family: 'standardNDSH100v5Family', vCpus: 96, memoryGiB: 1900, gpus: 8, gpu: { model: 'H100', memoryGiB: 80, bf16: true } },
];

const byLowerName = new Map(sizes.map((s) => [s.name.toLowerCase(), s]));

/** Looks a size up the way ARM does: case-insensitively. */
export function findVmSize(name: string): VmSize | undefined {
  return byLowerName.get(name.toLowerCase());
}

export const vmSizeNames: readonly string[] = sizes.map((s) => s.name);
