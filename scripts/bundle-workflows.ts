// `npm run build:workflows [path]`: bundles the workflow code at build time (the Dockerfile runs it),
// so the worker starts without webpack and every replica of one image runs byte-identical workflow code.
// Default output: dist/workflow-bundle.js; point the worker at it with WORKFLOW_BUNDLE.
import { resolve } from 'node:path';
import { defaultWorkflowBundlePath, writeWorkflowBundle } from '../workers/worker.js';

const codePath = resolve(process.argv[2] ?? defaultWorkflowBundlePath);
await writeWorkflowBundle(codePath);
console.log(`workflow bundle written to ${codePath}`);
