#!/usr/bin/env node
// The `aks-finetune` command (package.json "bin"): `npx aks-finetune <command>` in this repository,
// `aks-finetune <command>` once installed. The project ships TypeScript, so it registers tsx's
// loader in this process and runs the CLI; `npm run cli --` runs the same file.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
