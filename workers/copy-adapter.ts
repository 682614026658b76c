// `copy-adapter`: the command the copier Job runs (worker image) for a run whose adapter goes to a
// PersistentVolumeClaim (request output.volume, KAITO's tuning.output.volumeSource). It copies the
// trainer's adapter files from the run's results volume to the root of the user's volume, where
// KAITO's trainer leaves them, with the run's lineage beside them; what it copied goes to the
// container's termination message, which the workflow reads (readCopiedAdapter).
import { copyFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adapterContentDigest, adapterFiles } from '../activities/registry/adapter-image.js';
import { parseAnnotationArgs } from './push-adapter.js';

/** The lineage file beside the adapter: the annotations an adapter image would carry, and the content digest. */
export const lineageFile = 'aks-finetune-adapter.json';

export interface CopiedAdapter {
  /** The sha256 of the adapter's reproducible tar (the diff_id of the same adapter as an image). */
  contentDigest: string;
  files: { name: string; sizeBytes: number }[];
}

/**
 * Copies the adapter files into `outputDir`. Each lands under a temporary name and is renamed
 * into place, so a reader never sees half a file and a second copier (a retried attempt) writes
 * the same bytes again. Other files on the volume are left as they are.
 */
export async function copyAdapter(resultsDir: string, outputDir: string, annotations: Record<string, string>): Promise<CopiedAdapter> {
  const contentDigest = await adapterContentDigest(resultsDir);
  const files: CopiedAdapter['files'] = [];
  for (const name of adapterFiles) {
    const partial = join(outputDir, `.${name}.partial`);
    await copyFile(join(resultsDir, name), partial);
    await rename(partial, join(outputDir, name));
    files.push({ name, sizeBytes: (await stat(join(outputDir, name))).size });
  }
  await writeFile(join(outputDir, lineageFile), `${JSON.stringify({ contentDigest, annotations }, null, 2)}\n`);
  // The copy is read back and checked: a volume that lost a write fails the attempt here.
  const copied = await adapterContentDigest(outputDir);
  if (copied !== contentDigest) throw new Error(`the adapter on ${outputDir} reads back as ${copied}, not ${contentDigest}`);
  return { contentDigest, files };
}

export async function copyAdapterCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      results: { type: 'string', default: '/mnt/results' },
      output: { type: 'string', default: '/mnt/output' },
      annotation: { type: 'string', multiple: true, default: [] },
      // Kubernetes' default terminationMessagePath: what the copier writes there is the pod's termination message.
      'termination-log': { type: 'string', default: '/dev/termination-log' },
    },
  });
  const copied = await copyAdapter(values.results, values.output, parseAnnotationArgs(values.annotation));
  const summary = JSON.stringify(copied);
  await writeFile(values['termination-log'], summary);
  console.log(summary);
}

/** A copier's termination message, read back; undefined when it is not one. */
export function parseCopiedAdapter(message: string | undefined): CopiedAdapter | undefined {
  try {
    const parsed = JSON.parse(message ?? '') as CopiedAdapter;
    return typeof parsed.contentDigest === 'string' && Array.isArray(parsed.files) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

