// Every workflow type the worker registers.
export { gpuCheck } from './gpu-check.js';
export { endpoint } from './endpoint.js';
export { fineTune } from './fine-tune.js';
export { reapIdleGpuPools } from './reap-idle-gpu-pools.js';
export { retrain } from './retrain.js';
export { promoteAdapter } from './promote-adapter.js';
