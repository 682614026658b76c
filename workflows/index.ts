// Every workflow type the worker registers.
export { gpuCheck } from './gpu-check.js';
