// Loaded once per worker into its reusable V8 context and shared by every workflow there
// (bundlerOptions.preloadModules), instead of evaluated again for each cached workflow: the
// schema library is a large part of what a workflow's modules cost in memory. The SDK
// deep-freezes what is preloaded, so only libraries without per-workflow state belong here: zod
// keeps none (its registry of descriptions and its memoizer are WeakMaps keyed by each
// workflow's own schemas). What zod would otherwise set on first use is set now, before the
// freeze: its English messages and the memoizer (both its defaults), and no JIT, whose lazily
// cached "may I compile?" flag could not be written once frozen (the interpreted path validates
// the same).
import * as zod from 'zod';

// The whole namespace, used: webpack links each of the workflows' imports straight to the zod
// module that defines it, so a preload that named only `config` would leave those modules to be
// evaluated per workflow.
export const library = zod;
zod.config({ ...zod.locales.en(), memoizer: zod.memoizer(), jitless: true });
